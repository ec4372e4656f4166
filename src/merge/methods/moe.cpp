#include "merge/methods/moe.h"

#include <algorithm>
#include <cmath>
#include <numbers>
#include <vector>

#include "merge/methods/methods.h"
#include "merge/random.h"

namespace llmerge {
namespace {

// Fills out[i] = z_(begin + i), standard normals (see moe.h).
class NormalStream {
 public:
  NormalStream(std::uint64_t seed, std::uint64_t tensor_key) : random_(seed, tensor_key, 0) {}
  void normals(std::int64_t begin, std::size_t n, float* out) {
    uniforms_.resize(2 * n);
    random_.uniforms(2 * static_cast<std::uint64_t>(begin), uniforms_.data(), 2 * n);
    for (std::size_t i = 0; i < n; ++i) {
      const double u1 = 1.0 - static_cast<double>(uniforms_[2 * i]);  // (0, 1]: log is finite
      const double u2 = uniforms_[2 * i + 1];
      out[i] = static_cast<float>(std::sqrt(-2.0 * std::log(u1)) *
                                  std::cos(2.0 * std::numbers::pi * u2));
    }
  }
  ElementRandom& random() { return random_; }
  std::vector<float>& buffer() { return uniforms_; }

 private:
  ElementRandom random_;
  std::vector<float> uniforms_;
};

class ExpertMerge final : public TensorMerge {
 public:
  explicit ExpertMerge(const TensorContext& c)
      : noise_(c.params->global_value("noise_scale")),
        scale_(c.params->global_value("scale")),
        stream_(c.seed, c.tensor_key) {}

  void compute(const Chunk& chunk, float* out) override {
    const auto n = static_cast<std::size_t>(chunk.size);
    const float* x = chunk.models[0];
    if (noise_ != 0) {
      stream_.normals(chunk.begin, n, out);
      const auto noise = static_cast<float>(noise_);
      for (std::size_t i = 0; i < n; ++i)
        out[i] = x[i] + out[i] * noise;
    } else {
      for (std::size_t i = 0; i < n; ++i)
        out[i] = x[i];
    }
    const auto scale = static_cast<float>(scale_);
    if (scale_ != 1)
      for (std::size_t i = 0; i < n; ++i)
        out[i] *= scale;
  }

 private:
  double noise_;
  double scale_;
  NormalStream stream_;
};

class GateMerge final : public TensorMerge {
 public:
  explicit GateMerge(const TensorContext& c)
      : mode_(static_cast<MoeGateInit>(static_cast<int>(c.params->global_value("mode")))),
        hidden_(c.shape.empty() ? 1 : c.shape.back()),
        stream_(c.seed, c.tensor_key) {}

  void compute(const Chunk& chunk, float* out) override {
    const auto n = static_cast<std::size_t>(chunk.size);
    switch (mode_) {
      case MoeGateInit::zeros:
        for (std::size_t i = 0; i < n; ++i)
          out[i] = 0;
        break;
      case MoeGateInit::normal:
        stream_.normals(chunk.begin, n, out);
        break;
      case MoeGateInit::uniform: {
        // torch.rand * 2 * scale - scale, scale = sqrt(1 / h) (mergekit/moe/router.py).
        const double scale = std::sqrt(1.0 / static_cast<double>(hidden_));
        stream_.random().uniforms(static_cast<std::uint64_t>(chunk.begin), out, n);
        for (std::size_t i = 0; i < n; ++i)
          out[i] = static_cast<float>(static_cast<double>(out[i]) * 2 * scale - scale);
        break;
      }
    }
  }

 private:
  MoeGateInit mode_;
  std::int64_t hidden_;
  NormalStream stream_;
};

std::uint64_t normal_buffer_bytes(const std::vector<std::int64_t>&, std::int64_t numel, std::size_t,
                                  std::int64_t chunk) {
  return static_cast<std::uint64_t>(2 * std::min(numel, chunk)) * sizeof(float);
}

MethodSpec expert_spec() {
  MethodSpec spec;
  spec.name = "moe_expert";
  spec.pretty_name = "MoE expert";
  spec.reference = "https://github.com/arcee-ai/mergekit/blob/main/docs/moe.md";
  spec.description = "An expert's tensor with mergekit-moe's noise_scale and residual_scale";
  spec.models_min = 1;
  spec.models_max = 1;
  spec.random = true;
  spec.memory_bytes = &normal_buffer_bytes;
  spec.parameters = {
      number_parameter("noise_scale", ParameterSpec::Scope::global, 0.0, "N(0,1) noise factor"),
      number_parameter("scale", ParameterSpec::Scope::global, 1.0, "residual_scale"),
  };
  spec.make = [](const TensorContext& c) -> std::unique_ptr<TensorMerge> {
    return std::make_unique<ExpertMerge>(c);
  };
  return spec;
}

MethodSpec gate_spec() {
  MethodSpec spec;
  spec.name = "moe_gate";
  spec.pretty_name = "MoE router";
  spec.reference = "https://github.com/arcee-ai/mergekit/blob/main/docs/moe.md";
  spec.description = "A router weight: random, uniform_random or zeros";
  spec.models_min = 0;
  spec.models_max = 0;
  spec.random = true;
  spec.memory_bytes = &normal_buffer_bytes;
  spec.parameters = {
      number_parameter("mode", ParameterSpec::Scope::global, 1.0, "0 zeros, 1 normal, 2 uniform"),
  };
  spec.make = [](const TensorContext& c) -> std::unique_ptr<TensorMerge> {
    return std::make_unique<GateMerge>(c);
  };
  return spec;
}

}  // namespace

const MethodSpec& moe_expert_method() {
  static const MethodSpec spec = expert_spec();
  return spec;
}

const MethodSpec& moe_gate_method() {
  static const MethodSpec spec = gate_spec();
  return spec;
}

const MethodSpec& moe_plan_method() {
  static const MethodSpec spec = [] {
    MethodSpec s;
    s.name = "moe";
    s.pretty_name = "Mixture of Experts (mergekit-moe)";
    s.reference = "https://github.com/arcee-ai/mergekit/blob/main/docs/moe.md";
    s.description = "Dense models as the experts of a sparse mixture-of-experts model";
    s.models_min = 1;
    return s;
  }();
  return spec;
}

}  // namespace llmerge
