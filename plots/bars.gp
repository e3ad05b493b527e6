# Bars per task (clusters) and configuration: the mean over seeds, whiskers min..max.
# speedup = 1: training-time speedup vs 'none' (dashed line at 1x); 0: best dev metric.
# Variables: datafile, nconf, ntasks, speedup, titles[], coloridx[], palette[], fig_title, ylabel.
# datafile: "task" then per configuration mean min max.
figw = 1000; figh = 620
load plotdir."/terminal.gp"
set title fig_title font ",12"
set ylabel ylabel
set style data histograms
set style histogram errorbars gap 1.5 lw 1.5
set style fill solid 0.85 border rgb "#333333"
set bars front
set grid noxtics ytics
set key below left Left reverse maxrows 3 samplen 2
set yrange [0:*]
if (speedup) { set arrow 1 from graph 0, first 1 to graph 1, first 1 nohead dt 2 lw 1.5 lc rgb "#555555" front }
set offsets 0, 0, graph 0.08, 0
# bar i of a cluster sits at row + (i - 1 - (nconf - 1) / 2) / (nconf + gap), gap = 1.5
barx(i) = $0 + (i - 1 - (nconf - 1) / 2.0) / (nconf + 1.5)
fmtv(v) = speedup ? sprintf("%.2fx", v) : sprintf("%.3f", v)
plot for [i=1:nconf] datafile using (column(3*i - 1)):(column(3*i)):(column(3*i + 1)):xtic(1) \
     title titles[i] lc rgb palette[coloridx[i]], \
     for [i=1:nconf] datafile using (barx(i)):(column(3*i + 1)):(fmtv(column(3*i - 1))) \
     with labels offset 0, 0.8 font ",9" notitle
