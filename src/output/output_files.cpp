#include "output/output_files.h"

#include <fstream>
#include <sstream>

#include <fmt/core.h>

#include "core/error.h"
#include "output/conversion_card.h"

namespace llmerge {

namespace fs = std::filesystem;

const std::vector<std::string>& tokenizer_file_names() {
  static const std::vector<std::string> names{"tokenizer_config.json",
                                              "special_tokens_map.json",
                                              "tokenizer.json",
                                              "tokenizer.model",
                                              "added_tokens.json",
                                              "merges.txt",
                                              "chat_template.jinja",
                                              "generation_config.json",
                                              "chat_template.json",
                                              "video_preprocessor_config.json",
                                              "vocab.json"};
  return names;
}

namespace {

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(ErrorKind::io, fmt::format("cannot read '{}'", path.string()));
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

std::string model_card(const MergePlan& plan, const std::string& title) {
  // Hub ids only, never local paths, as mergekit writes it.
  std::string s = "---\n";
  std::string hub_models;
  for (std::size_t i = 0; i < plan.model_refs.size(); ++i)
    if (const auto id = hub_id_of(plan, i)) hub_models += fmt::format("- {}\n", *id);
  if (!hub_models.empty()) s += "base_model:\n" + hub_models;
  s += "library_name: transformers\ntags:\n- merge\n- llmerge\n---\n";
  s += fmt::format(
      "# {}\n\nThis is a merge of pre-trained language models made with llmerge, "
      "a native, mergekit-compatible merge tool.\n\n",
      title);
  s += "## Merge Details\n### Merge Method\n\n";
  s += fmt::format("This model was merged using the [{}]({}) merge method",
                   plan.method->pretty_name, plan.method->reference);
  if (plan.base_model && plan.method->name != "slerp") {
    s += fmt::format(" using {} as a base", plan.model_refs[*plan.base_model]);
  }
  s += ".\n\n### Models Merged\n\nThe following models were included in the merge:\n";
  for (std::size_t i = 0; i < plan.model_refs.size(); ++i) {
    if (plan.base_model && *plan.base_model == i) continue;
    s += fmt::format("* {}\n", plan.model_refs[i]);
  }
  s +=
      "\n### Configuration\n\nThe following YAML configuration was used to produce this model:\n\n";
  s += "```yaml\n" + plan.config.text + (plan.config.text.ends_with("\n") ? "" : "\n") + "```\n";
  return s;
}

void write_side_files(const MergePlan& plan, ModelWriter& writer, const SideFileOptions& options) {
  writer.write_file("config.json", plan.out_config.dump(2) + "\n");
  if (options.write_model_card && is_conversion(plan)) {
    // A conversion keeps the input's recipe rather than claim a passthrough merge.
    const fs::path in = plan.models[0].path();
    const bool folder = fs::is_directory(in);
    if (folder && fs::is_regular_file(in / "mergekit_config.yml")) {
      writer.copy_file(in / "mergekit_config.yml", "mergekit_config.yml");
    }
    const std::string card =
        folder && fs::is_regular_file(in / "README.md") ? read_file(in / "README.md") : "";
    writer.write_file("README.md",
                      conversion_card(plan, writer.out_dir().filename().string(), card));
  } else if (options.write_model_card) {
    writer.write_file("mergekit_config.yml", plan.config.text);
    writer.write_file("README.md", model_card(plan, writer.out_dir().filename().string()));
  }
  if (!options.copy_tokenizer) return;
  const fs::path dir = plan.models[plan.tokenizer_model].path();
  if (!fs::is_directory(dir)) return;
  const std::optional<std::string>& chat_template = plan.chat_template;
  for (const auto& name : tokenizer_file_names()) {
    const fs::path from = dir / name;
    if (!fs::is_regular_file(from)) continue;
    // A chat_template from the config replaces the donor's template files.
    if (chat_template && (name == "chat_template.jinja" || name == "chat_template.json")) continue;
    if (chat_template && name == "tokenizer_config.json") {
      nlohmann::json tc = nlohmann::json::parse(read_file(from), nullptr, false);
      if (!tc.is_object()) {
        throw Error(ErrorKind::format, fmt::format("'{}' is not a JSON object", from.string()));
      }
      tc["chat_template"] = *chat_template;
      writer.write_file(name, tc.dump(2) + "\n");
      continue;
    }
    writer.copy_file(from, name);
  }
  if (chat_template && !fs::is_regular_file(dir / "tokenizer_config.json")) {
    writer.write_file("tokenizer_config.json",
                      nlohmann::json{{"chat_template", *chat_template}}.dump(2) + "\n");
  }
}

}  // namespace llmerge
