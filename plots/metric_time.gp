# Dev metric vs wall time, one line per run of one task.
# Variables: nruns, files[], titles[], coloridx[], dashes[], palette[], fig_title, ylabel.
# Data columns (DIR/data/RUN.metric.dat): wall_s step value.
figw = 1000; figh = 620
load plotdir."/terminal.gp"
set title fig_title font ",13"
set xlabel "wall time since the run started (s; evaluations included)"
set ylabel ylabel
set key below left Left reverse maxrows 4 samplen 3 spacing 1.1
set xrange [0:*]
set offsets 0, graph 0.02, graph 0.05, graph 0.05
plot for [i=1:nruns] files[i] using 1:3 with linespoints lw 2 pt 7 ps 0.7 \
     dt dashes[i] lc rgb palette[coloridx[i]] title titles[i]
