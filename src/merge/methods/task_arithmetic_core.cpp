#include "merge/methods/task_arithmetic_core.h"

#include <algorithm>
#include <cmath>

#include "merge/kernels/kernels.h"
#include "merge/kernels/reduce.h"
#include "merge/methods/methods.h"

namespace llmerge::gta {
namespace {

// Elements per compute step: the per-model task-vector scratch stays in cache.
constexpr std::size_t k_step = 4096;
// mergekit's thresholds (generalized_task_arithmetic.py, sparsify.py).
constexpr double k_divisor_epsilon = 1e-8;
constexpr double k_rescale_epsilon = 1e-7;

class GtaMerge final : public TensorMerge {
 public:
  GtaMerge(const TensorContext& context, GtaVariant variant) : consensus_(variant.consensus) {
    const ResolvedParameters& params = *context.params;
    normalize_ = params.global_value("normalize") != 0.0;
    const bool rescale = params.global_value("rescale") != 0.0;
    lambda_ = static_cast<float>(params.global_value("lambda"));
    const std::size_t m = context.model_count;
    weights_.resize(m);
    sparsifiers_.resize(m);
    for (std::size_t i = 0; i < m; ++i) {
      weights_[i] = static_cast<float>(params.model_value(i, "weight"));
      weight_sum_ = i == 0 ? weights_[i] : weight_sum_ + weights_[i];
      const double density = params.model_value(i, "density");
      if (variant.sparsifier != nullptr && density < 1.0) {
        sparsifiers_[i] = variant.sparsifier(context, i, density, rescale);
      }
    }
    if (std::fabs(weight_sum_) < k_divisor_epsilon) weight_sum_ = 1.0f;
  }

  // Asked again after every pass: a sparsifier may need fewer passes once it
  // has seen one (ties, when its first pass already fixes the threshold).
  int passes() const override {
    int passes = 0;
    for (const auto& s : sparsifiers_) {
      if (s != nullptr) passes = std::max(passes, s->passes());
    }
    return passes;
  }

  void observe(int pass, const Chunk& chunk) override {
    if (scratch_.empty()) scratch_.resize(static_cast<std::size_t>(k_reduce_block));
    kernels::for_each_block(chunk.begin, chunk.size, [&](std::size_t off, std::size_t len) {
      for (std::size_t i = 0; i < sparsifiers_.size(); ++i) {
        Sparsifier* s = sparsifiers_[i].get();
        if (s == nullptr || pass >= s->passes()) continue;
        kernels::subtract(chunk.models[i] + off, chunk.base + off, scratch_.data(), len);
        s->observe(pass, chunk.begin + static_cast<std::int64_t>(off), scratch_.data(), len);
      }
    });
  }

  void end_pass(int pass) override {
    for (auto& s : sparsifiers_) {
      if (s != nullptr && pass < s->passes()) s->end_pass(pass);
    }
    if (pass + 1 >= passes()) std::vector<float>().swap(scratch_);
  }

  void compute(const Chunk& chunk, float* out) override {
    const std::size_t m = weights_.size();
    if (deltas_.empty()) {
      deltas_.resize(m * k_step);
      mixed_.resize(k_step);
      divisor_.resize(k_step);
      rows_.resize(m);
      for (std::size_t i = 0; i < m; ++i)
        rows_[i] = deltas_.data() + i * k_step;
    }
    const auto size = static_cast<std::size_t>(chunk.size);
    for (std::size_t i = 0; i < m; ++i) {
      if (sparsifiers_[i] != nullptr) {
        sparsifiers_[i]->begin_chunk(chunk.begin, size, chunk.models[i], chunk.base);
      }
    }
    for (std::size_t off = 0; off < size; off += k_step) {
      const std::size_t len = std::min(k_step, size - off);
      const float* base = chunk.base + off;
      for (std::size_t i = 0; i < m; ++i) {
        float* d = deltas_.data() + i * k_step;
        kernels::subtract(chunk.models[i] + off, base, d, len);
        if (sparsifiers_[i] != nullptr) {
          sparsifiers_[i]->apply(chunk.begin + static_cast<std::int64_t>(off), d, len);
        }
        kernels::scale(d, weights_[i], d, len);
      }
      if (consensus_) {
        kernels::sign_consensus(rows_.data(), weights_.data(), m, mixed_.data(), divisor_.data(),
                                len);
        if (normalize_) kernels::divide(mixed_.data(), divisor_.data(), len);
      } else {
        kernels::sum_rows(rows_.data(), m, mixed_.data(), len);
        if (normalize_) kernels::divide_scalar(mixed_.data(), weight_sum_, len);
      }
      if (lambda_ != 1.0f) kernels::scale(mixed_.data(), lambda_, mixed_.data(), len);
      kernels::add(base, mixed_.data(), out + off, len);
    }
  }

 private:
  bool consensus_;
  bool normalize_ = false;
  float lambda_ = 1.0f;
  std::vector<float> weights_;
  float weight_sum_ = 0.0f;  // the non-consensus divisor
  std::vector<std::unique_ptr<Sparsifier>> sparsifiers_;
  std::vector<float> scratch_;  // one model's task vector, one reduce block
  std::vector<float> deltas_;   // m rows of k_step
  std::vector<const float*> rows_;
  std::vector<float> mixed_;
  std::vector<float> divisor_;
};

}  // namespace

std::unique_ptr<TensorMerge> make_gta_merge(const TensorContext& context, GtaVariant variant) {
  return std::make_unique<GtaMerge>(context, variant);
}

MethodSpec gta_spec(std::string name, std::string pretty_name, std::string reference,
                    std::string description, bool normalize_default, bool rescale_default,
                    std::vector<ParameterSpec> extra) {
  MethodSpec spec;
  spec.name = std::move(name);
  spec.pretty_name = std::move(pretty_name);
  spec.reference = std::move(reference);
  spec.description = std::move(description);
  spec.base_use = MethodSpec::BaseUse::required;
  spec.models_min = 1;
  spec.models_max = 0;
  spec.rectify_to_common = false;
  ParameterSpec density = number_parameter("density", ParameterSpec::Scope::per_model, 1.0,
                                           "Fraction of the task vector's elements to keep");
  density.min = 0.0;
  density.min_open = true;
  density.max = 1.0;
  spec.parameters = {
      number_parameter("weight", ParameterSpec::Scope::per_model, std::nullopt,
                       "Weight of the model's task vector"),
      density,
  };
  for (ParameterSpec& p : extra)
    spec.parameters.push_back(std::move(p));
  for (ParameterSpec p : {
           bool_parameter("normalize", normalize_default,
                          "Divide by the sum of the (agreeing) weights"),
           bool_parameter("rescale", rescale_default,
                          "After sparsifying, restore each task vector's L1 norm"),
           number_parameter("lambda", ParameterSpec::Scope::global, 1.0,
                            "Scale the merged task vector (after normalization)"),
           bool_parameter(
               "int8_mask", false,
               "Accepted for mergekit compatibility; saves memory there, no effect here"),
       }) {
    spec.parameters.push_back(std::move(p));
  }
  return spec;
}

std::uint64_t gta_merge_bytes(std::size_t models) {
  return static_cast<std::uint64_t>(k_reduce_block) * sizeof(float) +  // scratch_
         (models + 2) * k_step * sizeof(float);                        // deltas_, mixed_, divisor_
}

void L1Rescale::add_block(const float* delta, const float* masked, std::size_t n) {
  full_ += kernels::reduce_l1(delta, n);
  kept_ += kernels::reduce_l1(masked, n);
}

std::optional<float> L1Rescale::factor() const {
  if (full_ < k_rescale_epsilon || kept_ < k_rescale_epsilon) return std::nullopt;
  return static_cast<float>(full_ / kept_);
}

}  // namespace llmerge::gta
