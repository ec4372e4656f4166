#include "table_options.h"

#include <algorithm>
#include <regex>

#include "llmerge/error.h"

namespace llmerge::cli {

namespace {

std::string kebab(std::string name) {
  std::replace(name.begin(), name.end(), '_', '-');
  return name;
}

class HelpFormatter : public CLI::Formatter {
 public:
  std::string make_option_name(const CLI::Option* opt, bool positional) const override {
    static const std::regex k_flag_value(R"(\{[^}]*\})");
    return std::regex_replace(CLI::Formatter::make_option_name(opt, positional), k_flag_value, "");
  }
};

}  // namespace

std::shared_ptr<CLI::FormatterBase> help_formatter() {
  static const auto formatter = std::make_shared<HelpFormatter>();
  return formatter;
}

void TableOptions::add(CLI::App& app, const std::string& command) {
  app.formatter(help_formatter());
  for (const OptionInfo& info : option_table()) {
    if (std::find(info.commands.begin(), info.commands.end(), command) == info.commands.end()) {
      continue;
    }
    auto slot = std::make_unique<Slot>();
    slot->info = &info;
    std::vector<std::string> names{info.name};
    names.insert(names.end(), info.aliases.begin(), info.aliases.end());
    for (std::size_t i = 0; i < names.size(); ++i) {
      auto s = std::make_unique<Spelling>();
      s->flag = "--" + kebab(names[i]);
      std::string cli_names;
      if (i == 0 && info.short_flag) cli_names += std::string("-") + info.short_flag + ",";
      cli_names += s->flag;
      const std::string help = i == 0 ? info.help + " (default: " + info.default_text + ")"
                                      : "the same as --" + kebab(info.name);
      if (info.type == OptionType::boolean) {
        cli_names += ",!--no-" + kebab(names[i]);
        s->option = app.add_flag(cli_names, s->value, help);
      } else {
        s->option = app.add_option(cli_names, s->text, help);
        s->option->type_name(info.type == OptionType::integer ? "INT" : "TEXT");
      }
      slot->spellings.push_back(std::move(s));
    }
    slots_[info.name] = std::move(slot);
  }
}

bool TableOptions::given(const std::string& name) const {
  auto it = slots_.find(name);
  if (it == slots_.end()) return false;
  return std::any_of(it->second->spellings.begin(), it->second->spellings.end(),
                     [](const auto& s) { return s->option->count() > 0; });
}

MergeOptions TableOptions::options() const {
  MergeOptions out;
  for (const auto& [name, slot] : slots_) {
    for (const auto& s : slot->spellings) {
      if (s->option->count() == 0) continue;
      const bool boolean = slot->info->type == OptionType::boolean;
      try {
        set_option(out, name, boolean ? (s->value ? "true" : "false") : s->text);
      } catch (const Error& e) {
        // "option 'q_bits' takes ..." -> "--bits takes ..."
        std::string message = e.message();
        const std::string library_name = "option '" + name + "'";
        if (message.starts_with(library_name)) {
          message = s->flag + message.substr(library_name.size());
        }
        throw Error(e.kind(), message);
      }
    }
  }
  return out;
}

}  // namespace llmerge::cli
