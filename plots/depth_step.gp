# Frozen depth vs optimizer step, one line per run of one task (lines nudged apart
# vertically so that runs at the same depth stay visible).
# Variables: nruns, layers, files[], titles[], coloridx[], dashes[], palette[], fig_title.
# Data columns (DIR/data/RUN.depth.dat): step frozen_depth.
figw = 1000; figh = 620
load plotdir."/terminal.gp"
set title fig_title font ",13"
set xlabel "optimizer step"
set ylabel "frozen depth (layers 0..k-1 frozen)"
set ytics 1
set yrange [-0.4 : layers - 0.6]
set xrange [0:*]
set key below left Left reverse maxrows 4 samplen 3 spacing 1.1
nudge(i) = (i - (nruns + 1) / 2.0) * (nruns > 1 ? 0.25 / nruns : 0)
plot for [i=1:nruns] files[i] using 1:($2 + nudge(i)) with steps lw 2.5 \
     dt dashes[i] lc rgb palette[coloridx[i]] title titles[i]
