#include "output/output_files.h"

#include <algorithm>

#include <fmt/core.h>

#include "core/error.h"
#include "io/files.h"
#include "output/conversion_card.h"
#include "output/tokenizer_files.h"
#include "plan/vocabulary.h"

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

// A YAML scalar for the front matter: plain for an ordinary reference
// ("org/name", "./models/a"), otherwise double-quoted. JSON string syntax is
// a subset of YAML's double-quoted style, so newlines, ": ", '#', quotes and
// control bytes in a path cannot break the front matter.
std::string yaml_scalar(const std::string& s) {
  const auto safe = [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == '/' || c == '-' || c == '+' || c == '@';
  };
  const bool plain = !s.empty() && std::all_of(s.begin(), s.end(), safe) && s.front() != '-' &&
                     s.front() != '@' && s != "null" && s != "true" && s != "false" && s != "yes" &&
                     s != "no";
  if (plain) return s;
  return nlohmann::json(s).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

// One line of Markdown text: control bytes (newlines included) become "\xNN".
std::string markdown_line(const std::string& s) {
  std::string out;
  for (const unsigned char c : s) {
    if (c < 0x20 || c == 0x7f) {
      out += fmt::format("\\x{:02x}", c);
    } else {
      out += static_cast<char>(c);
    }
  }
  return out;
}

// A code fence longer than any run of backticks in `text`, so the config
// cannot close it early (CommonMark's rule).
std::string fence_for(const std::string& text) {
  std::size_t longest = 0;
  std::size_t run = 0;
  for (const char c : text) {
    run = c == '`' ? run + 1 : 0;
    longest = std::max(longest, run);
  }
  return std::string(std::max<std::size_t>(3, longest + 1), '`');
}

}  // namespace

std::string model_card(const MergePlan& plan, const std::string& title) {
  // Hub ids only, never local paths, as mergekit writes it.
  std::string s = "---\n";
  std::string hub_models;
  for (std::size_t i = 0; i < plan.model_refs.size(); ++i)
    if (const auto id = hub_id_of(plan, i)) hub_models += fmt::format("- {}\n", yaml_scalar(*id));
  if (!hub_models.empty()) s += "base_model:\n" + hub_models;
  s += "library_name: transformers\ntags:\n- merge\n- llmerge\n---\n";
  s += fmt::format(
      "# {}\n\nThis is a merge of pre-trained language models made with llmerge, "
      "a native, mergekit-compatible merge tool.\n\n",
      markdown_line(title));
  s += "## Merge Details\n### Merge Method\n\n";
  s += fmt::format("This model was merged using the [{}]({}) merge method",
                   plan.method->pretty_name, plan.method->reference);
  if (plan.base_model && plan.method->name != "slerp") {
    s += fmt::format(" using {} as a base", markdown_line(plan.model_refs[*plan.base_model]));
  }
  s += ".\n\n### Models Merged\n\nThe following models were included in the merge:\n";
  for (std::size_t i = 0; i < plan.model_refs.size(); ++i) {
    if (plan.base_model && *plan.base_model == i) continue;
    s += fmt::format("* {}\n", markdown_line(plan.model_refs[i]));
  }
  s +=
      "\n### Configuration\n\nThe following YAML configuration was used to produce this model:\n\n";
  const std::string fence = fence_for(plan.config.text);
  s += fence + "yaml\n" + plan.config.text + (plan.config.text.ends_with("\n") ? "" : "\n") +
       fence + "\n";
  return s;
}

void write_side_files(const MergePlan& plan, ModelWriter& writer, const SideFileOptions& options) {
  writer.write_file("config.json", plan.out_config.dump(2) + "\n");
  if (options.write_model_card && is_conversion(plan)) {
    // A conversion keeps the input's recipe rather than claim a passthrough merge.
    // The input's files are untrusted side files: found and read with the same guards.
    const fs::path in = plan.models[0].path();
    const bool folder = fs::is_directory(in);
    if (folder) {
      if (const auto recipe = find_side_file(in, "mergekit_config.yml")) {
        writer.copy_file(*recipe, "mergekit_config.yml");
      }
    }
    std::string card;
    if (folder) {
      if (const auto readme = find_side_file(in, "README.md")) card = read_regular_file(*readme);
    }
    writer.write_file("README.md",
                      conversion_card(plan, writer.out_dir().filename().string(), card));
  } else if (options.write_model_card) {
    writer.write_file(plan.recipe_file, plan.config.text);
    writer.write_file("README.md", model_card(plan, writer.out_dir().filename().string()));
  }
  if (!options.copy_tokenizer) return;
  if (plan.vocabulary && plan.vocabulary->rewrites()) {
    write_built_tokenizer(plan, writer);
    return;
  }
  const fs::path dir = plan.models[plan.tokenizer_model].path();
  if (!fs::is_directory(dir)) return;
  const std::optional<std::string>& chat_template = plan.chat_template;
  bool has_tokenizer_config = false;
  for (const auto& name : tokenizer_file_names()) {
    // Untrusted: only regular files inside the model folder (or the HF
    // cache's blob store) are copied, and each is capped in size.
    const std::optional<fs::path> found = find_side_file(dir, name);
    if (!found) continue;
    const fs::path& from = *found;
    has_tokenizer_config |= name == "tokenizer_config.json";
    // A chat_template from the config replaces the donor's template files.
    if (chat_template && (name == "chat_template.jinja" || name == "chat_template.json")) continue;
    if (chat_template && name == "tokenizer_config.json") {
      nlohmann::json tc = parse_json_file(from);  // with config.json's guards
      if (!tc.is_object()) {
        throw Error(ErrorKind::format, fmt::format("'{}' is not a JSON object", from.string()));
      }
      tc["chat_template"] = *chat_template;
      writer.write_file(name, tc.dump(2) + "\n");
      continue;
    }
    writer.copy_file(from, name);
  }
  if (chat_template && !has_tokenizer_config) {
    writer.write_file("tokenizer_config.json",
                      nlohmann::json{{"chat_template", *chat_template}}.dump(2) + "\n");
  }
  // Current transformers reads chat_template.jinja first.
  if (chat_template) writer.write_file("chat_template.jinja", *chat_template);
}

}  // namespace llmerge
