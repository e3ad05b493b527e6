# Per-layer gradient L2 norm (summed over each decision interval) of one run: one cell per
# (interval, encoder layer), log colour scale; frozen cells grey; the black line marks the
# frozen depth during each interval.
# (log10 is taken here, on a linear colour axis: gnuplot's log cb axis labels a narrow range
# with a single tick.)
# Variables: heatfile, decfile, layers, nintervals, fig_title.
# heatfile columns: interval layer l2 frozen(0/1); decfile: interval step depth_before depth_after.
figw = 1000; figh = 600
load plotdir."/terminal.gp"
set title fig_title font ",13"
set xlabel "decision interval"
set ylabel "encoder layer (0 = next to the embeddings)"
set cblabel "log10 of the layer's gradient L2 norm over the interval"
set format cb "%.1f"
set palette defined (0 "#440154", 1 "#3b528b", 2 "#21918c", 3 "#5ec962", 4 "#fde725")
set xrange [-0.5 : nintervals - 0.5]
set yrange [-0.5 : layers - 0.5]
set ytics 1
if (nintervals <= 30) { set xtics 1 } else { set xtics autofreq }
set grid noxtics noytics
set key outside bottom center horizontal
set style fill solid 1.0 noborder
stats heatfile using 4 nooutput
anyfrozen = STATS_max > 0
if (anyfrozen) {
  plot heatfile using 1:2:(0.5):(0.5):($4 == 0 ? log10($3) : NaN) with boxxyerror lc palette notitle, \
       heatfile using 1:2:($4 == 1 ? 0.5 : NaN):(0.5) with boxxyerror lc rgb "#d0d0d0" title "frozen layer", \
       decfile using 1:($3 - 0.5) with histeps lw 3 lc rgb "black" title "frozen depth during the interval"
} else {
  plot heatfile using 1:2:(0.5):(0.5):($4 == 0 ? log10($3) : NaN) with boxxyerror lc palette notitle, \
       decfile using 1:($3 - 0.5) with histeps lw 3 lc rgb "black" title "frozen depth during the interval (none frozen)"
}
