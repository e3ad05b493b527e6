/* The machine's fp32 GEMM rate for a BERT training step's shapes: the yardstick the step
 * benchmark divides by ("the step runs at x% of the best sgemm rate"). */
#ifndef AF_BENCH_GEMM_H
#define AF_BENCH_GEMM_H

/* FLOP-weighted GFLOP/s of the 12 GEMMs of one encoder layer's linears (QKV, attention
 * output, FFN up, FFN down; forward, dinp and dw each) at hidden C, intermediate I and
 * N = B*T rows, for the fastest available library (oneDNN or OpenBLAS), with the current
 * thread count, through the CPU backend's op table. Takes a few seconds; restores the
 * library selection. <= 0 on failure. */
double af_bench_best_sgemm_gflops(int C, int I, int N);
#endif
