#include "output/conversion_card.h"

#include <algorithm>
#include <vector>

#include <fmt/core.h>

#include "io/mlx_quant.h"

namespace llmerge {

namespace fs = std::filesystem;

namespace {

std::vector<std::string_view> split_lines(std::string_view text) {
  std::vector<std::string_view> lines;
  while (!text.empty()) {
    const auto end = text.find('\n');
    lines.push_back(text.substr(0, end));
    if (end == std::string_view::npos) break;
    text.remove_prefix(end + 1);
  }
  return lines;
}

bool is_top_level_key(std::string_view line, std::string_view key) {
  return line.starts_with(key) && line.size() > key.size() && line[key.size()] == ':';
}

}  // namespace

bool is_conversion(const MergePlan& plan) {
  return plan.config.file == k_conversion_config_file;
}

std::optional<std::string> hub_id_of(const MergePlan& plan, std::size_t i) {
  // A Hub model resolves to <cache>/models--org--name/snapshots/<commit>. A
  // recipe stage computed in the same pass is no Hub model, wherever its
  // tokenizer files come from.
  if (plan.models[i].is_stage_output()) return std::nullopt;
  const fs::path path = plan.models[i].path();
  const fs::path repo = path.parent_path().parent_path();
  if (path.parent_path().filename() != "snapshots" ||
      !repo.filename().string().starts_with("models--")) {
    return std::nullopt;
  }
  return plan.model_refs[i];
}

std::string conversion_card(const MergePlan& plan, const std::string& title,
                            std::string_view input_card) {
  // Split the input card into its front matter and its text.
  std::vector<std::string_view> kept;  // front matter lines we keep as they are
  std::vector<std::string> tags;
  std::string_view body = input_card;
  if (input_card.starts_with("---\n")) {
    const auto end = input_card.find("\n---", 3);
    if (end != std::string_view::npos) {
      const auto lines = split_lines(input_card.substr(4, end - 3));
      body = input_card.substr(end + 4);
      if (body.starts_with("\n")) body.remove_prefix(1);
      std::string_view dropped_key;  // the top-level key whose lines are being replaced
      for (const auto line : lines) {
        const bool continuation = line.starts_with(" ") || line.starts_with("-");
        if (!continuation) {
          dropped_key = {};
          for (const std::string_view key : {"library_name", "pipeline_tag", "tags", "base_model"})
            if (is_top_level_key(line, key)) dropped_key = key;
        }
        if (dropped_key.empty()) {
          if (!line.empty()) kept.push_back(line);
        } else if (dropped_key == "tags" && line.starts_with("- ")) {
          tags.emplace_back(line.substr(2));
        }
      }
    }
  }
  if (std::find(tags.begin(), tags.end(), "mlx") == tags.end()) tags.emplace_back("mlx");

  std::string s = "---\n";
  for (const auto line : kept)
    s += fmt::format("{}\n", line);
  const auto hub = hub_id_of(plan, 0);
  if (hub) s += fmt::format("base_model: {}\n", *hub);
  s += "library_name: mlx\npipeline_tag: text-generation\ntags:\n";  // as mlx_lm.convert sets them
  for (const auto& t : tags)
    s += fmt::format("- {}\n", t);
  s += "---\n";
  std::string how = "dense (dequantized)";
  if (plan.options.quantize) {
    const QuantParams& q = *plan.options.quantize;
    how = fmt::format("MLX-quantized, {} bits, group size {}, {}", q.bits, q.group_size,
                      quant_mode_name(q.mode));
  }
  s += fmt::format("# {}\n\nThis model was converted to MLX format ({}) from {} with llmerge.\n",
                   title, how,
                   hub ? fmt::format("[{}](https://huggingface.co/{})", *hub, *hub)
                       : fmt::format("`{}`", plan.model_refs[0]));
  if (!body.empty()) s += fmt::format("\n{}", body);
  return s;
}

}  // namespace llmerge
