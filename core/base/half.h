/* fp16 and bf16 conversions (round to nearest even; NaN stays NaN), used by the
 * safetensors reader/writer and the activation cache's storage dtypes. */
#ifndef AF_HALF_H
#define AF_HALF_H
#include <stdint.h>
uint16_t af_f32_to_f16(float f);
float af_f16_to_f32(uint16_t h);
uint16_t af_f32_to_bf16(float f);
float af_bf16_to_f32(uint16_t h);
#endif
