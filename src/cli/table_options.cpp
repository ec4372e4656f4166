#include "table_options.h"

#include <algorithm>

namespace llmerge::cli {

namespace {

std::string kebab(std::string name) {
  std::replace(name.begin(), name.end(), '_', '-');
  return name;
}

}  // namespace

void TableOptions::add(CLI::App& app, const std::string& command) {
  for (const OptionInfo& info : option_table()) {
    if (std::find(info.commands.begin(), info.commands.end(), command) == info.commands.end()) {
      continue;
    }
    auto slot = std::make_unique<Slot>();
    slot->info = &info;
    std::string names;
    if (info.short_flag) names += std::string("-") + info.short_flag + ",";
    names += "--" + kebab(info.name);
    for (const auto& alias : info.aliases)
      names += ",--" + kebab(alias);
    const std::string help = info.help + " (default: " + info.default_text + ")";
    if (info.type == OptionType::boolean) {
      names += ",!--no-" + kebab(info.name);
      slot->option = app.add_flag(names, slot->flag, help);
    } else {
      slot->option = app.add_option(names, slot->text, help);
      slot->option->type_name(info.type == OptionType::integer ? "INT" : "TEXT");
    }
    slots_[info.name] = std::move(slot);
  }
}

bool TableOptions::given(const std::string& name) const {
  auto it = slots_.find(name);
  return it != slots_.end() && it->second->option->count() > 0;
}

MergeOptions TableOptions::options() const {
  MergeOptions out;
  for (const auto& [name, slot] : slots_) {
    if (slot->option->count() == 0) continue;
    set_option(
        out, name,
        slot->info->type == OptionType::boolean ? (slot->flag ? "true" : "false") : slot->text);
  }
  return out;
}

}  // namespace llmerge::cli
