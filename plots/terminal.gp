# Shared terminal set-up, loaded first by every figure script. The driver (core/cli/cli_plot.c)
# sets: term ("png" or "svg"), outbase (output path without extension); a script may set
# figw/figh (pixels) before loading this file. noenhanced: run names hold underscores.
if (!exists("figw")) figw = 1000
if (!exists("figh")) figh = 600
if (term eq "svg") {
  set terminal svg size figw, figh dynamic noenhanced font "Sans,12" background "white"
  set output outbase.".svg"
} else {
  set terminal pngcairo size figw, figh noenhanced font "Sans,11" background "white"
  set output outbase.".png"
}
set border lw 1.2
set grid lc rgb "#dddddd" lw 1
set key noautotitle
set datafile nocolumnheaders  # "reset session" keeps datafile settings
