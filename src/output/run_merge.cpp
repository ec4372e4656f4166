#include "output/run_merge.h"

#include <algorithm>

#include <fmt/core.h>

#include "core/error.h"
#include "output/layout.h"
#include "output/output_files.h"
#include "output/sinks.h"

namespace llmerge {

namespace {

namespace fs = std::filesystem;

fs::path normalized(const fs::path& p) {
  std::error_code ec;
  auto out = fs::weakly_canonical(fs::absolute(p), ec);
  return ec ? fs::absolute(p).lexically_normal() : out;
}

// True if `inner` is `outer` or below it.
bool is_within(const fs::path& inner, const fs::path& outer) {
  auto rel = inner.lexically_relative(outer);
  return !rel.empty() && *rel.begin() != "..";
}

}  // namespace

void check_output_path(const MergePlan& plan, const fs::path& out_dir) {
  const fs::path out = normalized(out_dir);
  for (std::size_t i = 0; i < plan.models.size(); ++i) {
    fs::path model = normalized(plan.models[i].path());
    if (fs::is_regular_file(model)) model = model.parent_path();
    if (is_within(out, model) || is_within(model, out)) {
      throw Error(ErrorKind::config,
                  fmt::format("output directory '{}' {} input model '{}' ({}); writing there could "
                              "destroy the input. Choose another output directory",
                              out_dir.string(),
                              out == model            ? "is"
                              : is_within(out, model) ? "is inside"
                                                      : "contains",
                              plan.model_refs[i], model.string()));
    }
  }
}

void run_merge(const MergePlan& plan, const RunSettings& options) {
  check_output_path(plan, options.out_dir);
  ModelWriterOptions writer_options = options.writer;
  // mlx-lm marks its files "mlx"; transformers accepts both.
  if (std::any_of(plan.tensors.begin(), plan.tensors.end(),
                  [](const auto& t) { return t.quantize; })) {
    writer_options.format = "mlx";
  }
  ModelWriter writer(options.out_dir, plan_tensor_specs(plan), writer_options);
  WriterSinks sinks(plan, writer);
  execute_plan(plan, sinks, options.execute);
  write_side_files(plan, writer, {options.copy_tokenizer, options.write_model_card});
  writer.commit();
}

}  // namespace llmerge
