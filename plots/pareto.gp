# The policy lab's Pareto figure, one task (experiments/policy_lab.lua, af.report.pareto):
# per policy the training-time speedup over full fine-tuning (x: geometric mean over seeds)
# against the best dev metric's mean difference to full fine-tuning (y, points), with the
# paired 95% intervals as bars in both directions (zero length when there is one seed).
# Up and to the right is better; full fine-tuning sits at (1, 0). The x axis is logarithmic.
# Variables (af.plot_script): datafile, npoints, labels[] (one per data row), fig_title,
# xlabel, ylabel, target_x, target_y (NaN: no target line); palette[] from the engine.
# datafile: "label" x y xlo xhi ylo yhi, one row per policy.
figw = 1100; figh = 700
load plotdir."/terminal.gp"
set title fig_title font ",12"
set xlabel xlabel
set ylabel ylabel
set grid xtics ytics
# speedups are ratios: a log scale, on which their intervals (t on the log ratio) are symmetric
set logscale x 2
set xtics (0.125, 0.25, 0.5, 0.75, 1, 1.25, 1.5, 2, 2.5, 3, 4, 6, 8, 16, 32)
set format x "%gx"
set key outside right top Left reverse samplen 1 title "policy (mean, 95% CI)"
set offsets graph 0.06, graph 0.12, graph 0.08, graph 0.08
set bars small
set arrow 1 from 1, graph 0 to 1, graph 1 nohead dt 2 lw 1.2 lc rgb "#777777" back
set arrow 2 from graph 0, first 0 to graph 1, first 0 nohead dt 2 lw 1.2 lc rgb "#777777" back
if (target_x == target_x) { set arrow 3 from target_x, graph 0 to target_x, graph 1 nohead dt 3 lw 1.2 lc rgb "#1b9e77" back }
if (target_y == target_y) { set arrow 4 from graph 0, first target_y to graph 1, first target_y nohead dt 3 lw 1.2 lc rgb "#1b9e77" back }
if (target_x == target_x && target_y == target_y) {
  set label 1 "target corner" at target_x, target_y offset 0.6, -1.1 left font ",9" tc rgb "#1b9e77" back
}
# point labels alternate above and below, so that policies at the same place stay readable
dy(i) = (i % 2) ? 0.9 : -0.9
plot for [i=1:npoints] datafile every ::i-1::i-1 using 2:3:4:5:6:7 with xyerrorbars lw 1.5 pt 7 ps 1.4 \
       lc rgb palette[(i - 1) % |palette| + 1] title labels[i], \
     for [i=1:npoints] datafile every ::i-1::i-1 using 2:3:1 with labels offset 0.8, dy(i) left font ",9" \
       tc rgb palette[(i - 1) % |palette| + 1] notitle
