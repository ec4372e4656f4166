// llmerge._core: the nanobind layer under the Python package (python/llmerge/).
//
// Thin on purpose: options arrive as {name: text} and go through set_option(),
// the one validation point; the Python layer (python/llmerge/__init__.py)
// builds those dicts from keyword arguments named by option_table(). Errors
// are translated once, here, into the classes of llmerge/_errors.py.
//
// Threads: plan() and run() release the GIL. The progress hook runs on the
// calling thread (RunOptions::progress), takes the GIL back, checks for
// signals (Ctrl-C) and calls the user's callback. A pending KeyboardInterrupt
// or an exception from the callback cancels the run's token rather than
// throwing through the executor; run() then removes its temporary output and
// the Python exception is re-raised as it was.
#include <map>
#include <optional>
#include <string>

#include <nanobind/nanobind.h>
#include <nanobind/stl/map.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/pair.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>

#include "llmerge/llmerge.h"
#include "llmerge/moe.h"
#include "llmerge/synth.h"

namespace nb = nanobind;
using namespace nb::literals;

namespace {

using OptionText = std::map<std::string, std::string>;

llmerge::MergeOptions to_options(const OptionText& options) {
  llmerge::MergeOptions out;
  for (const auto& [name, value] : options)
    llmerge::set_option(out, name, value);
  return out;
}

// Runs `body` (plan, run or both) with the GIL released and the progress hook
// described at the top of the file. `body` receives the options to use.
template <class Body>
llmerge::RunResult run_released(llmerge::MergeOptions options, nb::object progress,
                                std::optional<llmerge::CancelToken> cancel, double interval_s,
                                Body body) {
  if (cancel) options.run.cancel = *cancel;
  options.run.progress_interval_s = interval_s;
  std::optional<nb::python_error> pending;
  const llmerge::CancelToken token = options.run.cancel;
  options.run.progress = [&](const llmerge::Progress& p) {
    nb::gil_scoped_acquire gil;
    if (pending) return;
    if (PyErr_CheckSignals() != 0) {  // only ever true on the main thread
      pending.emplace();
      token.cancel();
      return;
    }
    if (progress.is_none()) return;
    try {
      progress(nb::cast(p, nb::rv_policy::copy));
    } catch (nb::python_error& e) {
      pending.emplace(std::move(e));
      token.cancel();
    }
  };
  std::optional<llmerge::RunResult> result;
  try {
    nb::gil_scoped_release released;
    result = body(options);
  } catch (...) {
    if (pending) throw nb::python_error(std::move(*pending));
    throw;
  }
  if (pending) throw nb::python_error(std::move(*pending));
  return *result;
}

// Builds the exception object of llmerge/_errors.py for an llmerge::Error.
void translate_error(const std::exception_ptr& p, void*) {
  try {
    std::rethrow_exception(p);
  } catch (const llmerge::Error& e) {
    nb::object make = nb::module_::import_("llmerge._errors").attr("_from_native");
    nb::object exc =
        make(std::string(llmerge::error_kind_name(e.kind())), e.what(), e.problems_json());
    PyErr_SetObject(reinterpret_cast<PyObject*>(Py_TYPE(exc.ptr())), exc.ptr());
  }
}

nb::dict option_info(const llmerge::OptionInfo& o) {
  static const char* const types[] = {"boolean", "integer", "string", "choice"};
  nb::dict d;
  d["name"] = o.name;
  d["type"] = types[static_cast<int>(o.type)];
  d["scope"] = o.scope == llmerge::OptionScope::plan  ? "plan"
               : o.scope == llmerge::OptionScope::run ? "run"
                                                      : "recipe";
  d["default_text"] = o.default_text;
  d["help"] = o.help;
  d["choices"] = o.choices;
  d["commands"] = o.commands;
  d["aliases"] = o.aliases;
  return d;
}

}  // namespace

NB_MODULE(_core, m) {
  m.doc() = "llmerge's C++ engine; use the llmerge package, not this module.";
  nb::register_exception_translator(translate_error);
  m.attr("__version__") = llmerge::version();

  nb::class_<llmerge::CancelToken>(m, "CancelToken")
      .def(nb::init<>())
      .def("cancel", &llmerge::CancelToken::cancel)
      .def_prop_ro("cancelled", &llmerge::CancelToken::cancelled);

  nb::class_<llmerge::Config>(m, "Config")
      .def_static("load", &llmerge::Config::load, "path"_a)
      .def_static("parse", &llmerge::Config::parse, "yaml"_a, "name"_a = "<config>")
      .def_prop_ro("text", &llmerge::Config::text)
      .def_prop_ro("name", &llmerge::Config::name)
      .def_prop_ro("merge_method", &llmerge::Config::merge_method);

  nb::class_<llmerge::PlannedTensorInfo>(m, "PlannedTensor")
      .def_ro("name", &llmerge::PlannedTensorInfo::name)
      .def_ro("dtype", &llmerge::PlannedTensorInfo::dtype)
      .def_ro("shape", &llmerge::PlannedTensorInfo::shape)
      .def_ro("method", &llmerge::PlannedTensorInfo::method)
      .def_ro("inputs", &llmerge::PlannedTensorInfo::inputs)
      .def_ro("layer", &llmerge::PlannedTensorInfo::layer)
      .def_ro("quantize_bits", &llmerge::PlannedTensorInfo::quantize_bits);

  nb::class_<llmerge::Plan>(m, "Plan")
      .def("json", [](const llmerge::Plan& p) { return p.json(); })
      .def("describe", [](const llmerge::Plan& p) { return p.describe(); })
      .def("tensors", &llmerge::Plan::tensors)
      .def("notes", &llmerge::Plan::notes)
      .def_prop_ro("output_bytes", &llmerge::Plan::output_bytes)
      .def_prop_ro("output_layers", &llmerge::Plan::output_layers)
      .def(
          "memory_estimate",
          [](const llmerge::Plan& p, const OptionText& options) {
            return p.memory_estimate(to_options(options).run);
          },
          "options"_a = OptionText{});

  nb::class_<llmerge::Progress>(m, "Progress")
      .def_ro("tensors_done", &llmerge::Progress::tensors_done)
      .def_ro("tensors_total", &llmerge::Progress::tensors_total)
      .def_ro("bytes_done", &llmerge::Progress::bytes_done)
      .def_ro("bytes_total", &llmerge::Progress::bytes_total)
      .def_ro("seconds", &llmerge::Progress::seconds)
      .def("__repr__", [](const llmerge::Progress& p) {
        return "Progress(tensors " + std::to_string(p.tensors_done) + "/" +
               std::to_string(p.tensors_total) + ", bytes " + std::to_string(p.bytes_done) + "/" +
               std::to_string(p.bytes_total) + ")";
      });

  nb::class_<llmerge::RunResult>(m, "RunResult")
      .def_ro("output", &llmerge::RunResult::output)
      .def_ro("tensors", &llmerge::RunResult::tensors)
      .def_ro("bytes", &llmerge::RunResult::bytes)
      .def_ro("layers", &llmerge::RunResult::layers)
      .def_ro("seconds", &llmerge::RunResult::seconds)
      .def_ro("memory_estimate", &llmerge::RunResult::memory_estimate);

  m.def(
      "plan",
      [](const llmerge::Config& config, const OptionText& options,
         std::optional<llmerge::CancelToken> cancel) {
        const llmerge::MergeOptions o = to_options(options);
        nb::gil_scoped_release released;
        return llmerge::plan(config, o.plan, cancel.value_or(llmerge::CancelToken()));
      },
      "config"_a, "options"_a, "cancel"_a = nb::none());

  m.def(
      "run",
      [](const llmerge::Plan& plan, const std::string& out, const OptionText& options,
         nb::object progress, std::optional<llmerge::CancelToken> cancel, double interval_s) {
        return run_released(
            to_options(options), progress, cancel, interval_s,
            [&](const llmerge::MergeOptions& o) { return llmerge::run(plan, out, o.run); });
      },
      "plan"_a, "out"_a, "options"_a, "progress"_a = nb::none(), "cancel"_a = nb::none(),
      "progress_interval"_a = 0.1);

  m.def(
      "merge",
      [](const llmerge::Config& config, const std::string& out, const OptionText& options,
         nb::object progress, std::optional<llmerge::CancelToken> cancel, double interval_s) {
        return run_released(
            to_options(options), progress, cancel, interval_s,
            [&](const llmerge::MergeOptions& o) { return llmerge::merge(config, out, o); });
      },
      "config"_a, "out"_a, "options"_a, "progress"_a = nb::none(), "cancel"_a = nb::none(),
      "progress_interval"_a = 0.1);

  m.def(
      "quantize",
      [](const std::string& model, const std::string& out, const OptionText& options,
         nb::object progress, std::optional<llmerge::CancelToken> cancel, double interval_s) {
        return run_released(
            to_options(options), progress, cancel, interval_s,
            [&](const llmerge::MergeOptions& o) { return llmerge::quantize(model, out, o); });
      },
      "model"_a, "out"_a, "options"_a, "progress"_a = nb::none(), "cancel"_a = nb::none(),
      "progress_interval"_a = 0.1);

  m.def(
      "fuse",
      [](const std::string& model, const std::string& adapter, const std::string& out,
         const OptionText& options, nb::object progress, std::optional<llmerge::CancelToken> cancel,
         double interval_s) {
        return run_released(
            to_options(options), progress, cancel, interval_s,
            [&](const llmerge::MergeOptions& o) { return llmerge::fuse(model, adapter, out, o); });
      },
      "model"_a, "adapter"_a, "out"_a, "options"_a, "progress"_a = nb::none(),
      "cancel"_a = nb::none(), "progress_interval"_a = 0.1);

  m.def(
      "inspect",
      [](const std::string& model, bool with_tensors, const std::string& base_dir) {
        nb::gil_scoped_release released;
        const llmerge::ModelInfo info = llmerge::inspect(model, with_tensors, base_dir);
        return std::make_pair(info.json, info.describe);
      },
      "model"_a, "with_tensors"_a = false, "base_dir"_a = "");

  nb::class_<llmerge::MoeConfig>(m, "MoeConfig")
      .def_static("load", &llmerge::MoeConfig::load, "path"_a)
      .def_static("parse", &llmerge::MoeConfig::parse, "yaml"_a, "name"_a = "<config>")
      .def_prop_ro("text", &llmerge::MoeConfig::text)
      .def_prop_ro("name", &llmerge::MoeConfig::name)
      .def_prop_ro("gate_mode", &llmerge::MoeConfig::gate_mode)
      .def_prop_ro("needs_prompt_gates", &llmerge::MoeConfig::needs_prompt_gates);

  m.def(
      "plan_moe",
      [](const llmerge::MoeConfig& config, const OptionText& options,
         std::optional<llmerge::CancelToken> cancel) {
        const llmerge::MergeOptions o = to_options(options);
        nb::gil_scoped_release released;
        return llmerge::plan_moe(config, o.plan, cancel.value_or(llmerge::CancelToken()));
      },
      "config"_a, "options"_a, "cancel"_a = nb::none());

  m.def(
      "moe_gate_request",
      [](const llmerge::MoeConfig& config, const OptionText& options) {
        const llmerge::MergeOptions o = to_options(options);
        nb::gil_scoped_release released;
        return llmerge::moe_gate_request(config, o.plan);
      },
      "config"_a, "options"_a);

  m.def("methods_json", &llmerge::methods_json);
  m.def("methods_text", &llmerge::methods_text);
  m.def("options_schema_json", &llmerge::options_schema_json);
  m.def("option_table", [] {
    nb::list out;
    for (const auto& o : llmerge::option_table())
      out.append(option_info(o));
    return out;
  });

  m.def(
      "synth",
      [](const std::string& out, std::optional<std::string> params,
         std::optional<std::string> family, std::optional<int> layers, std::optional<int> hidden,
         std::optional<int> intermediate, std::optional<int> heads, std::optional<int> kv_heads,
         std::optional<int> vocab, bool tied, std::optional<std::string> dtype,
         std::optional<std::uint64_t> seed, std::optional<std::string> like,
         std::optional<double> delta_scale, std::optional<std::string> shard_size,
         std::optional<int> threads, bool force) {
        llmerge::SynthSpec s;
        s.params = params.value_or("");
        s.family = family;
        s.layers = layers;
        s.hidden = hidden;
        s.intermediate = intermediate;
        s.heads = heads;
        s.kv_heads = kv_heads;
        s.vocab = vocab;
        s.tied = tied;
        s.dtype = dtype;
        s.seed = seed;
        s.like = like;
        s.delta_scale = delta_scale;
        s.shard_size = shard_size;
        s.threads = threads;
        s.force = force;
        nb::gil_scoped_release released;
        const llmerge::SynthResult r = llmerge::synth(out, s);
        return r.tensors;
      },
      "out"_a, "params"_a = nb::none(), "family"_a = nb::none(), "layers"_a = nb::none(),
      "hidden"_a = nb::none(), "intermediate"_a = nb::none(), "heads"_a = nb::none(),
      "kv_heads"_a = nb::none(), "vocab"_a = nb::none(), "tied"_a = false, "dtype"_a = nb::none(),
      "seed"_a = nb::none(), "like"_a = nb::none(), "delta_scale"_a = nb::none(),
      "shard_size"_a = nb::none(), "threads"_a = nb::none(), "force"_a = false);
  m.def("synth_family_names", &llmerge::synth_family_names);

  // compare (llmerge/compare.h): the JSON document; Python parses it.
  m.def(
      "compare",
      [](const std::vector<std::string>& models, const std::string& base, double density,
         int threads, bool per_tensor, const std::string& base_dir,
         std::optional<llmerge::CancelToken> cancel) {
        llmerge::CompareOptions o;
        o.base = base;
        o.density = density;
        o.threads = threads;
        o.per_tensor = per_tensor;
        o.base_dir = base_dir;
        o.cancel = cancel.value_or(llmerge::CancelToken());
        nb::gil_scoped_release released;
        return llmerge::compare(models, o).json();
      },
      "models"_a, "base"_a = "", "density"_a = 0.2, "threads"_a = 0, "per_tensor"_a = false,
      "base_dir"_a = "", "cancel"_a = nb::none());
  m.def("compare_report_html", &llmerge::compare_report_html, "json"_a);
  m.def("compare_text", [](const std::string& json) {
    // describe() of a result rebuilt from its document.
    llmerge::CompareResult r;
    r.document = json;
    return r.describe();
  });
}
