# Where the wall time of a run goes, stacked per configuration of one task (seconds; mean
# over seeds; n=K when K seeds are averaged; the total above each bar). Columns of datafile:
# "configuration" data forward backward optimizer "step other" evaluation checkpoints
# "setup and rest" (the first row names them).
# Variables: datafile, nbars, fig_title.
figw = 1000; figh = 650
load plotdir."/terminal.gp"
set title fig_title font ",13"
set ylabel "time (s)"
set style data histograms
set style histogram rowstacked
set style fill solid 0.9 border rgb "#333333"
set boxwidth 0.6
if (nbars > 2) { set xtics rotate by 20 right nomirror } else { set xtics norotate nomirror }
set datafile columnheaders
set grid noxtics ytics
set key outside right top vertical Left reverse
set yrange [0:*]
array phasecol[8] = ["#8dd3c7", "#80b1d3", "#fb8072", "#fdb462", "#bebada", "#b3de69", "#fccde5", "#d9d9d9"]
set offsets 0, 0, graph 0.08, 0
total(dummy) = column(2) + column(3) + column(4) + column(5) + column(6) + column(7) + column(8) + column(9)
plot for [c=2:9] datafile using c:xtic(1) title columnheader(c) lc rgb phasecol[c - 1], \
     datafile using 0:(total(0)):(sprintf("%.3g s", total(0))) with labels offset 0, 0.8 font ",9" notitle
