// Merge methods: the registry, and the interface the executor drives.
//
// A method is described by a MethodSpec (name, parameters with defaults and
// ranges, how it uses the base model). The planner validates a config against
// the spec; the executor then asks the spec for a TensorMerge per output
// tensor and streams the tensor through it in chunks:
//
//   auto merge = spec.make(context);
//   for (int pass = 0; pass < merge->passes(); ++pass) {     // statistics
//     for (each chunk, in order) merge->observe(pass, chunk);
//     merge->end_pass(pass);
//   }
//   for (each chunk, in order) merge->compute(chunk, out);   // the output
//
// Chunks arrive in increasing element order, one tensor on one thread.
// Every chunk except the last has a size that is a multiple of
// k_reduce_block, so a method that sums per block of k_reduce_block elements
// (kernels/reduce.h) and adds the block sums in order gets the same bits for
// any chunk size. All inputs are already f32 and of the output's logical
// shape. Kernels assume valid input: the planner has checked everything.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace llmerge {

// Reductions are summed per block of this many elements, then block sums in order.
inline constexpr std::int64_t k_reduce_block = 1 << 16;

// Memory a method may keep between its passes for one tensor, all models
// together: della's keep bits, the odd keys of ties and breadcrumbs
// (rank_select.h). Over it, the method recomputes or takes one more pass.
// 4 MiB: the keep bits of a Llama-3.2-1B MLP matrix (16 Mi elements) for two
// models, and 2 x 4 MiB stays well inside the 64 MiB peak RSS aimed at with
// two threads.
inline constexpr std::uint64_t k_scratch_bytes = 4u << 20;

// ---------------------------------------------------------------- parameters

struct ParameterSpec {
  enum class Scope { global, per_model };
  enum class Type { number, boolean };
  std::string name;
  Scope scope = Scope::global;
  Type type = Type::number;
  std::optional<double> default_value;  // nullopt: required
  // Allowed range, checked by the planner (bounds inclusive unless *_open).
  double min = -1e300;
  double max = 1e300;
  bool min_open = false;
  bool max_open = false;
  std::string help;
};

// Parameter values resolved for one output tensor (numbers; bools as 0/1).
struct ResolvedParameters {
  std::vector<std::pair<std::string, double>> global;
  std::vector<std::vector<std::pair<std::string, double>>> per_model;  // parallel to inputs

  // Both return the resolved value; the planner guarantees every parameter
  // of the spec is present (defaults filled in).
  double global_value(std::string_view name) const;
  double model_value(std::size_t model, std::string_view name) const;
};

// --------------------------------------------------------------- execution

// What a method knows about the tensor it merges.
struct TensorContext {
  std::string_view name;            // output tensor name
  std::vector<std::int64_t> shape;  // logical output shape
  std::int64_t numel = 0;
  std::size_t model_count = 0;  // inputs, not counting the base
  bool has_base = false;
  const ResolvedParameters* params = nullptr;
  // For random methods: streams are keyed by (seed, tensor_key, model, element).
  std::uint64_t seed = 0;
  std::uint64_t tensor_key = 0;                   // hash of the output tensor name
  std::uint64_t scratch_bytes = k_scratch_bytes;  // tests lower it
};

// A chunk of every input: elements [begin, begin + size) of the flattened tensor.
struct Chunk {
  std::int64_t begin = 0;
  std::int64_t size = 0;
  const float* base = nullptr;           // nullptr when the method has no base input
  std::span<const float* const> models;  // one pointer per non-base input, config order
};

class TensorMerge {
 public:
  virtual ~TensorMerge() = default;
  // Number of statistics passes before compute() (0 for element-wise
  // methods). The executor asks again after each end_pass(): a method may
  // lower it once a pass has shown that the later ones are not needed.
  virtual int passes() const { return 0; }
  virtual void observe(int /*pass*/, const Chunk& /*chunk*/) {}
  virtual void end_pass(int /*pass*/) {}
  // Writes chunk.size output values.
  virtual void compute(const Chunk& chunk, float* out) = 0;
};

// ------------------------------------------------------------------ registry

struct MethodSpec {
  enum class BaseUse {
    none,      // no base input (the base, if given, is just another model, e.g. linear)
    required,  // a base model is required and is passed as Chunk::base
    optional,  // used as Chunk::base when given
  };
  std::string name;         // the merge_method value, e.g. "dare_ties"
  std::string pretty_name;  // for the model card, e.g. "DARE TIES"
  std::string reference;    // paper URL
  std::string description;  // one line for `llmerge methods`
  BaseUse base_use = BaseUse::none;
  // Count of non-base inputs allowed; max 0 = unlimited.
  std::size_t models_min = 1;
  std::size_t models_max = 0;
  bool random = false;  // uses the seed
  // Peak bytes that one TensorMerge of this method allocates and touches for
  // a tensor of `shape` (`numel` elements) from `models` non-base inputs in
  // chunks of `chunk` elements, besides the executor's chunk buffers: the
  // planner's memory estimate adds it per worker. nullptr: a few KiB, counted as 0.
  std::uint64_t (*memory_bytes)(const std::vector<std::int64_t>& shape, std::int64_t numel,
                                std::size_t models, std::int64_t chunk) = nullptr;
  // Bytes that one TensorMerge draws, besides memory_bytes, from a pool that
  // every worker of the process shares and that never holds more than
  // `shared_budget` (della's keep-bit cache). The planner counts
  // min(threads × the largest draw, shared_budget) once, not per worker.
  std::uint64_t (*shared_bytes)(const std::vector<std::int64_t>& shape, std::int64_t numel,
                                std::size_t models, std::int64_t chunk) = nullptr;
  std::uint64_t shared_budget = 0;
  // When inputs differ in shape on an embedding, truncate to the common
  // sub-matrix (true; linear, slerp) or to the base's shape (false; the task
  // arithmetic family). See docs/mergekit-semantics.md §1.2.
  bool rectify_to_common = true;
  std::vector<ParameterSpec> parameters;
  std::unique_ptr<TensorMerge> (*make)(const TensorContext&) = nullptr;
  // Constraints between parameters that the ranges above cannot express
  // (e.g. weights that must not sum to zero). Called by the planner for every
  // output tensor; returns a message saying what is wrong, or "" if all is well.
  std::string (*check)(const ResolvedParameters&) = nullptr;
  // Whether a tensor of these parameters merges element by element: each
  // output element depends only on the same element of the inputs (and on
  // merge/random.h streams keyed by that element's index), with no
  // statistics passes and no state carried from one chunk to the next, so
  // compute() may be called on any range in any order. One-pass recipes
  // stream such a stage into the next without writing it (docs/recipes.md
  // §3). Returns "" when it does, else why not, for the plan note. nullptr:
  // never (whole-tensor statistics, norms, ranks or angles).
  std::string (*elementwise)(const ResolvedParameters&) = nullptr;

  const ParameterSpec* find_parameter(std::string_view name) const;
};

// Every method, in a fixed order.
const std::vector<MethodSpec>& method_registry();
// nullptr if no such method.
const MethodSpec* find_method(std::string_view name);

}  // namespace llmerge
