// The tensor operations of `llmerge moe` (plan/moe_planner.h). They are not
// merge methods a config can name, so they are not in method_registry():
//
//  - moe_expert: an expert's tensor, x' = (x + noise_scale · z) · scale with
//    z ~ N(0, 1) (mergekit/moe/common.py noise_and_scale: torch.randn_like
//    times noise_scale, then residual_scale on down_proj). An unscaled, noiseless
//    copy is planned as passthrough instead (a byte copy when dtypes agree).
//  - moe_gate: a router weight [experts, hidden] computed from nothing:
//    mode 1 is N(0, 1) (gate_mode: random, torch.randn), mode 2 is
//    U(-1/sqrt(h), 1/sqrt(h)) (uniform_random, nn.Linear's init); mode 0 is
//    zeros (the q/k/v biases Qwen2-MoE needs when the base has none).
//
// Random values come from the counter-based Philox stream (merge/random.h)
// keyed by (seed, output tensor name, model 0): byte-identical on every run,
// thread count and chunk size, and unrelated to torch's generator, so the
// bytes differ from mergekit-moe's (the distribution is the same).
// Normals use Box-Muller on the uniforms of elements 2e and 2e + 1:
//   z_e = sqrt(-2 ln(1 - u_2e)) · cos(2π u_2e+1)
// in double, rounded to f32.
#pragma once

#include "merge/method.h"

namespace llmerge {

enum class MoeGateInit { zeros = 0, normal = 1, uniform = 2 };

const MethodSpec& moe_expert_method();
const MethodSpec& moe_gate_method();
// What a moe plan names as its method (model card, `llmerge plan`).
const MethodSpec& moe_plan_method();

}  // namespace llmerge
