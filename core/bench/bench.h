/* Benchmarks behind `autofreeze bench <what>`. Each takes the arguments after <what>
 * (argv[0] is <what>) and returns an exit code like the CLI subcommands. Benchmarks
 * report ratios measured in one run; they are never unit tests. */
#ifndef AF_BENCH_H
#define AF_BENCH_H
int af_bench_gemm(int argc, char **argv);      /* core/bench/bench_gemm.c */
int af_bench_tokenize(int argc, char **argv);  /* core/bench/bench_tokenize.c */
int af_bench_step(int argc, char **argv);      /* core/bench/bench_step.c */
int af_bench_cache(int argc, char **argv);     /* core/bench/bench_cache.c */
#endif
