# The policy lab's trade-off figure, one task (af.report.tradeoff_write): every run as a point,
# its frozen share (x: mean frozen depth over its steps / layers) against its best dev metric's
# difference to its seed's baseline (y, points), one colour per policy, and the least-squares
# line over all the points. A policy whose points sit above the line keeps more accuracy than
# the others at the same amount of freezing; its legend entry gives its mean residual.
# Variables (af.plot_script): datafile (one block per policy, blocks apart by two blank lines),
# nblocks, labels[] (one per block), line_a, line_b, fig_title, xlabel, ylabel, target_x (the
# frozen share the target speedup takes), target_y (the target's points; NaN: no line); palette[].
figw = 1100; figh = 700
load plotdir."/terminal.gp"
set title fig_title font ",12"
set xlabel xlabel
set ylabel ylabel
set grid xtics ytics
set xrange [0:1]
set key outside right top Left reverse samplen 1 title "policy (mean points above the line)"
set offsets 0, 0, graph 0.08, graph 0.08
set arrow 1 from graph 0, first 0 to graph 1, first 0 nohead dt 2 lw 1.2 lc rgb "#777777" back
if (target_x == target_x) { set arrow 3 from target_x, graph 0 to target_x, graph 1 nohead dt 3 lw 1.2 lc rgb "#1b9e77" back }
if (target_y == target_y) { set arrow 4 from graph 0, first target_y to graph 1, first target_y nohead dt 3 lw 1.2 lc rgb "#1b9e77" back }
if (target_x == target_x && target_y == target_y) {
  set label 1 "target corner" at target_x, target_y offset 0.6, 0.9 left font ",9" tc rgb "#1b9e77" back
}
fit_line(x) = line_a + line_b * x
plot for [i=1:nblocks] datafile index i-1 using 1:2 with points pt 7 ps 1.3 \
       lc rgb palette[(i - 1) % |palette| + 1] title labels[i], \
     fit_line(x) with lines lw 2 dt 1 lc rgb "#444444" title "least squares"
