// cortex.llm._native: the pybind11 module behind Python's cortex.llm (python/cortex/llm).
//
// Generation runs with the GIL released. Ctrl-C reaches a running generation through a SIGINT
// handler chained in front of Python's for the length of the call: it stops generation at the
// next token, and Python's own handler then raises KeyboardInterrupt. Streams run generation on a
// worker thread that never touches Python objects and hand pieces over through a queue.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>
#include <pythread.h>
#include <signal.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <exception>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "cortex/error.h"
#include "cortex/llm.h"

namespace py = pybind11;
using namespace cortex::llm;

namespace {

// ---- Ctrl-C -------------------------------------------------------------------------------

std::atomic<unsigned> g_sigint_count{0};
struct sigaction g_python_sigint;  // Python's handler, which ours calls after counting
unsigned long g_main_thread_ident = 0;

void on_sigint(int sig) {
    g_sigint_count.fetch_add(1, std::memory_order_relaxed);
    if (g_python_sigint.sa_handler != SIG_DFL && g_python_sigint.sa_handler != SIG_IGN) g_python_sigint.sa_handler(sig);
}

// While alive (constructed with the GIL held, on Python's main thread, where Python handles
// signals), a SIGINT is counted before Python's handler sees it, so that code without the GIL can
// notice it. Does nothing on other threads or when SIGINT is not handled by a plain handler.
class InterruptWatch {
  public:
    InterruptWatch() {
        if (PyThread_get_thread_ident() != g_main_thread_ident) return;
        struct sigaction current;
        if (sigaction(SIGINT, nullptr, &current) != 0) return;
        if ((current.sa_flags & SA_SIGINFO) || current.sa_handler == SIG_DFL || current.sa_handler == SIG_IGN ||
            current.sa_handler == on_sigint) {
            return;
        }
        g_python_sigint = current;
        struct sigaction ours = current;
        ours.sa_handler = on_sigint;
        start_ = g_sigint_count.load(std::memory_order_relaxed);
        installed_ = sigaction(SIGINT, &ours, nullptr) == 0;
    }
    ~InterruptWatch() { restore(); }
    InterruptWatch(const InterruptWatch &) = delete;
    InterruptWatch & operator=(const InterruptWatch &) = delete;

    bool active() const { return installed_; }
    bool interrupted() const { return installed_ && g_sigint_count.load(std::memory_order_relaxed) != start_; }
    void restore() {
        if (installed_) sigaction(SIGINT, &g_python_sigint, nullptr);
        installed_ = false;
    }

  private:
    bool installed_ = false;
    unsigned start_ = 0;
};

// Raises what Python's signal handlers raise (KeyboardInterrupt) after an interrupted call.
void raise_pending_signals() {
    if (PyErr_CheckSignals() != 0) throw py::error_already_set();
}

using Job = std::function<Result(const TokenCallback &)>;

// Runs `job` without the GIL; Ctrl-C on the main thread stops it and raises KeyboardInterrupt.
Result run_blocking(const Job & job) {
    InterruptWatch watch;
    Result result;
    {
        py::gil_scoped_release release;
        if (watch.active()) {
            result = job([&watch](std::string_view) { return !watch.interrupted(); });
        } else {
            result = job(TokenCallback());
        }
    }
    if (watch.interrupted()) {
        watch.restore();
        raise_pending_signals();
    }
    return result;
}

py::str to_str(const std::string & s) {
    // Pieces never split a UTF-8 character; "replace" keeps a model's stray bytes from raising.
    PyObject * o = PyUnicode_DecodeUTF8(s.data(), static_cast<Py_ssize_t>(s.size()), "replace");
    if (!o) throw py::error_already_set();
    return py::reinterpret_steal<py::str>(o);
}

// ---- Streams ------------------------------------------------------------------------------

// An iterator over the pieces of one generation, produced by a worker thread.
class Stream {
  public:
    explicit Stream(Job job) : job_(std::move(job)) {}
    ~Stream() { cancel_and_join(); }  // the worker never needs the GIL, so joining with it is safe
    Stream(const Stream &) = delete;
    Stream & operator=(const Stream &) = delete;

    py::object next() {
        if (!started_) start();
        std::string piece;
        bool got = false;
        bool done = false;
        InterruptWatch watch;
        {
            py::gil_scoped_release release;
            std::unique_lock<std::mutex> lock(mutex_);
            while (pieces_.empty() && !done_ && !watch.interrupted()) {
                cv_.wait_for(lock, std::chrono::milliseconds(20));
            }
            if (!pieces_.empty()) {
                piece = std::move(pieces_.front());
                pieces_.pop_front();
                got = true;
            }
            done = done_;
        }
        if (got) return to_str(piece);
        if (!done) {  // Ctrl-C while waiting
            watch.restore();
            close();
            raise_pending_signals();
        }
        join();
        if (error_) {
            std::exception_ptr error = error_;
            error_ = nullptr;
            std::rethrow_exception(error);
        }
        throw py::stop_iteration();
    }

    // Stops generation (the result's finish_reason becomes "cancelled") and waits for it.
    void close() {
        py::gil_scoped_release release;
        cancel_and_join();
    }

    // The Result once the stream is exhausted (or closed after starting), else None.
    py::object result() const {
        if (!finished_) return py::none();
        return py::cast(result_);
    }

  private:
    void start() {
        started_ = true;
        worker_ = std::thread([this] {
            Result result;
            std::exception_ptr error;
            try {
                result = job_([this](std::string_view piece) {
                    std::lock_guard<std::mutex> lock(mutex_);
                    if (cancelled_) return false;
                    pieces_.emplace_back(piece);
                    cv_.notify_one();
                    return true;
                });
            } catch (...) {
                error = std::current_exception();
            }
            std::lock_guard<std::mutex> lock(mutex_);
            result_ = std::move(result);
            error_ = error;
            done_ = true;
            cv_.notify_all();
        });
    }

    void cancel_and_join() {
        {
            std::lock_guard<std::mutex> lock(mutex_);
            cancelled_ = true;
        }
        join();
    }

    // Two threads may close one stream (close() runs without the GIL): one joins, one waits.
    void join() {
        std::lock_guard<std::mutex> lock(join_mutex_);
        if (worker_.joinable()) {
            worker_.join();
            finished_ = !error_;
        }
    }

    Job job_;
    std::thread worker_;
    std::mutex join_mutex_;
    std::mutex mutex_;
    std::condition_variable cv_;
    std::deque<std::string> pieces_;
    bool started_ = false;
    bool cancelled_ = false;
    bool done_ = false;
    bool finished_ = false;  // joined with a result
    Result result_;
    std::exception_ptr error_;
};

py::object generate(Job job, bool stream) {
    if (stream) return py::cast(std::make_unique<Stream>(std::move(job)));
    return py::cast(run_blocking(job));
}

// ---- Conversions --------------------------------------------------------------------------

// A float field shown as the shortest decimal that is the same float: 0.7f reads as 0.7.
double float_to_py(float f) {
    char buf[32];
    for (int precision = 6; precision <= 9; ++precision) {
        snprintf(buf, sizeof buf, "%.*g", precision, static_cast<double>(f));
        if (strtof(buf, nullptr) == f) break;
    }
    return strtod(buf, nullptr);
}

std::vector<std::string> to_stop(const py::handle & stop) {
    std::vector<std::string> out;
    if (stop.is_none()) return out;
    if (py::isinstance<py::str>(stop)) {
        out.push_back(stop.cast<std::string>());
        return out;
    }
    if (!py::isinstance<py::iterable>(stop)) throw py::type_error("stop must be a str or a list of str");
    for (const py::handle & s : stop) {
        if (!py::isinstance<py::str>(s)) throw py::type_error("stop must be a str or a list of str");
        out.push_back(s.cast<std::string>());
    }
    return out;
}

uint32_t to_seed(const py::handle & seed) {
    if (!py::isinstance<py::int_>(seed) || py::isinstance<py::bool_>(seed)) throw py::type_error("seed must be an int");
    long long v = seed.cast<long long>();
    if (v == -1) return 0xFFFFFFFFu;
    if (v < 0 || v > 0xFFFFFFFFLL) throw py::value_error("seed must be in 0..4294967295 (or -1 for a random seed)");
    return static_cast<uint32_t>(v);
}

FinishReason to_finish_reason(const std::string & s) {
    if (s == "stop") return FinishReason::kStop;
    if (s == "length") return FinishReason::kLength;
    if (s == "cancelled") return FinishReason::kCancelled;
    throw py::value_error("finish_reason must be 'stop', 'length' or 'cancelled', got '" + s + "'");
}

const char * flash_attention_name(FlashAttention fa) {
    switch (fa) {
        case FlashAttention::kOn:
            return "on";
        case FlashAttention::kOff:
            return "off";
        case FlashAttention::kAuto:
            break;
    }
    return "auto";
}

FlashAttention to_flash_attention(const py::handle & v) {
    if (py::isinstance<py::bool_>(v)) return v.cast<bool>() ? FlashAttention::kOn : FlashAttention::kOff;
    if (!py::isinstance<py::str>(v)) throw py::type_error("flash_attention must be 'auto', 'on' or 'off'");
    const std::string s = v.cast<std::string>();
    if (s == "auto") return FlashAttention::kAuto;
    if (s == "on") return FlashAttention::kOn;
    if (s == "off") return FlashAttention::kOff;
    throw py::value_error("flash_attention must be 'auto', 'on' or 'off', got '" + s + "'");
}

// A str or an os.PathLike (pathlib.Path) as the string the library takes.
std::string to_path(const py::handle & path) {
    if (py::isinstance<py::str>(path)) return path.cast<std::string>();
    PyObject * fs = PyOS_FSPath(path.ptr());
    if (!fs) throw py::error_already_set();
    return py::reinterpret_steal<py::object>(fs).cast<std::string>();  // str or bytes
}

const char * split_mode_name(SplitMode mode) {
    switch (mode) {
        case SplitMode::kNone:
            return "none";
        case SplitMode::kRow:
            return "row";
        case SplitMode::kLayer:
            break;
    }
    return "layer";
}

SplitMode to_split_mode(const std::string & s) {
    if (s == "none") return SplitMode::kNone;
    if (s == "layer") return SplitMode::kLayer;
    if (s == "row") return SplitMode::kRow;
    throw py::value_error("split_mode must be 'none', 'layer' or 'row', got '" + s + "'");
}

std::vector<std::string> to_str_list(const py::handle & v, const char * what) {
    std::vector<std::string> out;
    if (v.is_none()) return out;
    if (py::isinstance<py::str>(v)) throw py::type_error(std::string(what) + " must be a list of str");
    for (const py::handle & s : v) {
        if (!py::isinstance<py::str>(s)) throw py::type_error(std::string(what) + " must be a list of str");
        out.push_back(s.cast<std::string>());
    }
    return out;
}

std::string quoted(const std::string & s) {
    return py::repr(to_str(s)).cast<std::string>();
}

std::string number(double v) {
    return py::repr(py::float_(v)).cast<std::string>();
}

// Messages as Python writes them: a list of {"role": ..., "content": ...} dicts.
std::vector<Message> to_messages(const py::handle & messages) {
    if (py::isinstance<py::str>(messages) || !py::isinstance<py::sequence>(messages)) {
        throw py::type_error("messages must be a list of {'role': str, 'content': str} dicts");
    }
    std::vector<Message> out;
    size_t i = 0;
    for (const py::handle & m : messages) {
        const std::string where = "messages[" + std::to_string(i++) + "]";
        if (!py::isinstance<py::dict>(m) && !py::hasattr(m, "keys")) {
            throw py::type_error(where + " must be a dict with 'role' and 'content'");
        }
        Message message;
        for (const char * key : {"role", "content"}) {
            if (!m.attr("__contains__")(key).cast<bool>()) throw py::value_error(where + " has no '" + key + "'");
            py::object v = m[key];
            if (!py::isinstance<py::str>(v)) throw py::type_error(where + "['" + key + "'] must be a str");
            (key[0] == 'r' ? message.role : message.content) = v.cast<std::string>();
        }
        out.push_back(std::move(message));
    }
    return out;
}

GenerationConfig config_or_default(const std::optional<GenerationConfig> & config) {
    return config ? *config : GenerationConfig();
}

std::string repr(const GenerationConfig & c) {
    std::string stop = "[";
    for (size_t i = 0; i < c.stop.size(); ++i) stop += (i ? ", " : "") + quoted(c.stop[i]);
    stop += "]";
    return "GenerationConfig(max_tokens=" + std::to_string(c.max_tokens) +
           ", temperature=" + number(float_to_py(c.temperature)) + ", top_p=" + number(float_to_py(c.top_p)) +
           ", top_k=" + std::to_string(c.top_k) + ", min_p=" + number(float_to_py(c.min_p)) +
           ", repeat_penalty=" + number(float_to_py(c.repeat_penalty)) +
           ", repeat_last_n=" + std::to_string(c.repeat_last_n) + ", seed=" + std::to_string(c.seed) +
           ", stop=" + stop + ", grammar=" + quoted(c.grammar) + ", json_schema=" + quoted(c.json_schema) +
           ", ignore_eos=" + (c.ignore_eos ? "True" : "False") +
           ", cache_prompt=" + (c.cache_prompt ? "True" : "False") + ")";
}

bool same(const GenerationConfig & a, const GenerationConfig & b) {
    return a.max_tokens == b.max_tokens && a.temperature == b.temperature && a.top_p == b.top_p && a.top_k == b.top_k &&
           a.min_p == b.min_p && a.repeat_penalty == b.repeat_penalty && a.repeat_last_n == b.repeat_last_n &&
           a.seed == b.seed && a.stop == b.stop && a.grammar == b.grammar && a.json_schema == b.json_schema &&
           a.ignore_eos == b.ignore_eos && a.cache_prompt == b.cache_prompt;
}

std::vector<double> tensor_split_to_py(const ModelConfig & c) {
    std::vector<double> out;
    for (float f : c.tensor_split) out.push_back(float_to_py(f));
    return out;
}

std::string repr(const ModelConfig & c) {
    return "ModelConfig(n_ctx=" + std::to_string(c.n_ctx) + ", n_gpu_layers=" + std::to_string(c.n_gpu_layers) +
           ", n_threads=" + std::to_string(c.n_threads) + ", n_batch=" + std::to_string(c.n_batch) +
           ", flash_attention='" + flash_attention_name(c.flash_attention) +
           "', use_mmap=" + (c.use_mmap ? "True" : "False") + ", split_mode='" + split_mode_name(c.split_mode) +
           "', tensor_split=" + py::repr(py::cast(tensor_split_to_py(c))).cast<std::string>() +
           ", main_gpu=" + std::to_string(c.main_gpu) +
           ", rpc_servers=" + py::repr(py::cast(c.rpc_servers)).cast<std::string>() +
           ", rpc_allow_remote=" + (c.rpc_allow_remote ? "True" : "False") + ")";
}

std::string repr(const Result & r) {
    std::string content = r.content.size() > 60 ? r.content.substr(0, 60) + "..." : r.content;
    return "Result(content=" + quoted(content) + ", finish_reason='" + finish_reason_name(r.finish_reason) +
           "', prompt_tokens=" + std::to_string(r.prompt_tokens) +
           ", cached_tokens=" + std::to_string(r.cached_tokens) +
           ", completion_tokens=" + std::to_string(r.completion_tokens) +
           ", tokens_per_second=" + number(r.tokens_per_second) +
           ", prompt_tokens_per_second=" + number(r.prompt_tokens_per_second) +
           ", time_to_first_token_ms=" + number(r.time_to_first_token_ms) + ", total_ms=" + number(r.total_ms) +
           ", load_ms=" + number(r.load_ms) + ")";
}

// A float attribute of a struct, read as the decimal it was written as.
template <typename T>
void def_float(py::class_<T> & cls, const char * name, float T::*field, const char * doc) {
    cls.def_property(
        name, [field](const T & c) { return float_to_py(c.*field); },
        [field](T & c, double v) { c.*field = static_cast<float>(v); }, doc);
}

const char * kGenerationConfigDoc =
    R"doc(How to generate. Every field is a keyword argument and an attribute; the defaults are
llama-server's, as in the C++ ``cortex::llm::GenerationConfig``.

Args:
    max_tokens: most tokens to generate; must be > 0 (default 256).
    temperature: 0 = greedy, deterministic argmax (default 0.8).
    top_p: nucleus sampling; 1 = off (default 0.95).
    top_k: 0 = off (default 40).
    min_p: 0 = off (default 0.05).
    repeat_penalty: 1 = off (default 1.0).
    repeat_last_n: tokens the repeat penalty looks back over (default 64).
    seed: 0..4294967295; 4294967295 (or -1) = a random seed per call (the default).
    stop: strings that end generation, never part of the returned content (a str or a list).
    grammar: GBNF; the output must match its "root" rule.
    json_schema: JSON Schema text; the output is JSON that matches it.
    ignore_eos: keep generating past end-of-generation tokens (default False).
    cache_prompt: reuse the KV cache of the longest common prefix (default True).

Bad values raise InvalidArgumentError (a CortexError and a ValueError) when generation starts.)doc";

}  // namespace

PYBIND11_MODULE(_native, m) {
    m.doc() = "The native half of cortex.llm (pybind11 over libcortex); import cortex.llm instead.";
    g_main_thread_ident = py::module_::import("threading").attr("main_thread")().attr("ident").cast<unsigned long>();

    // cortex::Error -> the CortexError subclass of its code (cortex.llm._errors).
    static py::object make_error = py::module_::import("cortex.llm._errors").attr("_make_error");
    make_error.inc_ref();  // kept for the life of the process: translators may run at exit
    py::register_exception_translator([](std::exception_ptr p) {
        try {
            if (p) std::rethrow_exception(p);
        } catch (const cortex::Error & e) {
            py::object exc = make_error(cortex::error_code_name(e.code()), e.message(), e.hint());
            PyErr_SetObject(reinterpret_cast<PyObject *>(Py_TYPE(exc.ptr())), exc.ptr());
        }
    });

    // ---- ModelConfig
    py::class_<ModelConfig> model_config(m, "ModelConfig", R"doc(How a model is loaded; the defaults are Cortex's.

Args:
    n_ctx: context window in tokens; must be > 0 (default 4096).
    n_gpu_layers: layers to offload to the GPU; -1 = all (default), 0 = none.
    n_threads: CPU threads; 0 = one per physical core (default).
    n_batch: tokens evaluated per llama_decode() call while reading a prompt (default 512).
    flash_attention: "auto" (default), "on" or "off".
    use_mmap: map the file instead of reading it into memory (default True).
    split_mode: over several devices: "none" (all on main_gpu), "layer" (default) or "row".
    tensor_split: a proportion per device, e.g. [3, 1]; empty = by free memory (default).
    main_gpu: the device of split_mode "none" (default 0).
    rpc_servers: ggml RPC servers ("host:port") whose devices take part; devices are ordered
        RPC servers first, then local GPUs.
    rpc_allow_remote: allow RPC hosts other than loopback (RPC has no authentication).)doc");
    const ModelConfig mc;
    model_config
        .def(py::init([](int n_ctx, int n_gpu_layers, int n_threads, int n_batch, const py::object & flash_attention,
                         bool use_mmap, const std::string & split_mode, const std::vector<double> & tensor_split,
                         int main_gpu, const py::object & rpc_servers, bool rpc_allow_remote) {
                 ModelConfig c;
                 c.n_ctx = n_ctx;
                 c.n_gpu_layers = n_gpu_layers;
                 c.n_threads = n_threads;
                 c.n_batch = n_batch;
                 c.flash_attention = to_flash_attention(flash_attention);
                 c.use_mmap = use_mmap;
                 c.split_mode = to_split_mode(split_mode);
                 c.tensor_split.assign(tensor_split.begin(), tensor_split.end());
                 c.main_gpu = main_gpu;
                 c.rpc_servers = to_str_list(rpc_servers, "rpc_servers");
                 c.rpc_allow_remote = rpc_allow_remote;
                 return c;
             }),
             py::kw_only(), py::arg("n_ctx") = mc.n_ctx, py::arg("n_gpu_layers") = mc.n_gpu_layers,
             py::arg("n_threads") = mc.n_threads, py::arg("n_batch") = mc.n_batch,
             py::arg("flash_attention") = flash_attention_name(mc.flash_attention), py::arg("use_mmap") = mc.use_mmap,
             py::arg("split_mode") = split_mode_name(mc.split_mode), py::arg("tensor_split") = std::vector<double>(),
             py::arg("main_gpu") = mc.main_gpu, py::arg("rpc_servers") = py::none(),
             py::arg("rpc_allow_remote") = mc.rpc_allow_remote,
             "Makes a ModelConfig; every argument is a keyword with Cortex's default.")
        .def_readwrite("n_ctx", &ModelConfig::n_ctx, "Context window in tokens; must be > 0.")
        .def_readwrite("n_gpu_layers", &ModelConfig::n_gpu_layers, "Layers to offload to the GPU; -1 = all, 0 = none.")
        .def_readwrite("n_threads", &ModelConfig::n_threads, "CPU threads; 0 = one per physical core.")
        .def_readwrite("n_batch", &ModelConfig::n_batch, "Tokens per llama_decode() call while reading a prompt.")
        .def_property(
            "flash_attention", [](const ModelConfig & c) { return flash_attention_name(c.flash_attention); },
            [](ModelConfig & c, const py::object & v) { c.flash_attention = to_flash_attention(v); },
            "Flash attention: 'auto', 'on' or 'off'.")
        .def_readwrite("use_mmap", &ModelConfig::use_mmap, "Map the file instead of reading it into memory.")
        .def_property(
            "split_mode", [](const ModelConfig & c) { return split_mode_name(c.split_mode); },
            [](ModelConfig & c, const std::string & v) { c.split_mode = to_split_mode(v); },
            "Over several devices: 'none' (all on main_gpu), 'layer' or 'row'.")
        .def_property(
            "tensor_split", [](const ModelConfig & c) { return tensor_split_to_py(c); },
            [](ModelConfig & c, const std::vector<double> & v) { c.tensor_split.assign(v.begin(), v.end()); },
            "A proportion per device (a copy: assign a new list to change it); empty = by free memory.")
        .def_readwrite("main_gpu", &ModelConfig::main_gpu, "The device of split_mode 'none'.")
        .def_property(
            "rpc_servers", [](const ModelConfig & c) { return c.rpc_servers; },
            [](ModelConfig & c, const py::object & v) { c.rpc_servers = to_str_list(v, "rpc_servers"); },
            "ggml RPC servers ('host:port') whose devices take part (a copy: assign a new list to change it).")
        .def_readwrite("rpc_allow_remote", &ModelConfig::rpc_allow_remote,
                       "Allow RPC hosts other than loopback (RPC has no authentication).")
        .def("__eq__", [](const ModelConfig & a, const ModelConfig & b) { return a == b; })
        .def("__repr__", [](const ModelConfig & c) { return repr(c); });

    // ---- GenerationConfig
    py::class_<GenerationConfig> gen_config(m, "GenerationConfig", kGenerationConfigDoc);
    const GenerationConfig gc;
    gen_config
        .def(py::init([](int max_tokens, double temperature, double top_p, int top_k, double min_p,
                         double repeat_penalty, int repeat_last_n, const py::object & seed, const py::object & stop,
                         std::string grammar, std::string json_schema, bool ignore_eos, bool cache_prompt) {
                 GenerationConfig c;
                 c.max_tokens = max_tokens;
                 c.temperature = static_cast<float>(temperature);
                 c.top_p = static_cast<float>(top_p);
                 c.top_k = top_k;
                 c.min_p = static_cast<float>(min_p);
                 c.repeat_penalty = static_cast<float>(repeat_penalty);
                 c.repeat_last_n = repeat_last_n;
                 c.seed = to_seed(seed);
                 c.stop = to_stop(stop);
                 c.grammar = std::move(grammar);
                 c.json_schema = std::move(json_schema);
                 c.ignore_eos = ignore_eos;
                 c.cache_prompt = cache_prompt;
                 return c;
             }),
             py::kw_only(), py::arg("max_tokens") = gc.max_tokens, py::arg("temperature") = float_to_py(gc.temperature),
             py::arg("top_p") = float_to_py(gc.top_p), py::arg("top_k") = gc.top_k,
             py::arg("min_p") = float_to_py(gc.min_p), py::arg("repeat_penalty") = float_to_py(gc.repeat_penalty),
             py::arg("repeat_last_n") = gc.repeat_last_n, py::arg("seed") = py::int_(gc.seed),
             py::arg("stop") = py::none(), py::arg("grammar") = gc.grammar, py::arg("json_schema") = gc.json_schema,
             py::arg("ignore_eos") = gc.ignore_eos, py::arg("cache_prompt") = gc.cache_prompt,
             "Makes a GenerationConfig; every argument is a keyword with the C++ default.")
        .def_readwrite("max_tokens", &GenerationConfig::max_tokens, "Most tokens to generate; must be > 0.");
    def_float(gen_config, "temperature", &GenerationConfig::temperature, "0 = greedy (deterministic argmax).");
    def_float(gen_config, "top_p", &GenerationConfig::top_p, "Nucleus sampling; 1 = off.");
    gen_config.def_readwrite("top_k", &GenerationConfig::top_k, "Top-k sampling; 0 = off.");
    def_float(gen_config, "min_p", &GenerationConfig::min_p, "Min-p sampling; 0 = off.");
    def_float(gen_config, "repeat_penalty", &GenerationConfig::repeat_penalty, "Repeat penalty; 1 = off.");
    gen_config
        .def_readwrite("repeat_last_n", &GenerationConfig::repeat_last_n, "Tokens the repeat penalty looks back over.")
        .def_property(
            "seed", [](const GenerationConfig & c) { return c.seed; },
            [](GenerationConfig & c, const py::object & v) { c.seed = to_seed(v); },
            "Sampling seed; 4294967295 (set -1 for it) = a random seed per call.")
        .def_property(
            "stop", [](const GenerationConfig & c) { return c.stop; },
            [](GenerationConfig & c, const py::object & v) { c.stop = to_stop(v); },
            "Stop strings (a copy: assign a new list to change it); never part of the returned content.")
        .def_readwrite("grammar", &GenerationConfig::grammar, "GBNF grammar; the output must match its 'root' rule.")
        .def_readwrite("json_schema", &GenerationConfig::json_schema,
                       "JSON Schema text; the output is JSON matching it.")
        .def_readwrite("ignore_eos", &GenerationConfig::ignore_eos, "Keep generating past end-of-generation tokens.")
        .def_readwrite("cache_prompt", &GenerationConfig::cache_prompt,
                       "Reuse the KV cache of the longest common prefix.")
        .def("__eq__", [](const GenerationConfig & a, const GenerationConfig & b) { return same(a, b); })
        .def("__repr__", [](const GenerationConfig & c) { return repr(c); });

    // ---- Result
    py::class_<Result>(m, "Result", "What a generation produced, and how fast (C++ cortex::llm::Result).")
        .def(py::init<>(), "An empty Result (generation calls make the real ones).")
        .def_property(
            "content", [](const Result & r) { return to_str(r.content); },
            [](Result & r, std::string v) { r.content = std::move(v); }, "The generated text, without stop strings.")
        .def_property(
            "finish_reason", [](const Result & r) { return finish_reason_name(r.finish_reason); },
            [](Result & r, const std::string & v) { r.finish_reason = to_finish_reason(v); },
            "Why generation ended: 'stop' (end of generation or a stop string), 'length' (max_tokens) or "
            "'cancelled' (a stream closed early, or Ctrl-C).")
        .def_readwrite("prompt_tokens", &Result::prompt_tokens, "Tokens in the prompt, cached ones included.")
        .def_readwrite("cached_tokens", &Result::cached_tokens, "Prompt tokens reused from the KV cache.")
        .def_readwrite("completion_tokens", &Result::completion_tokens, "Tokens generated.")
        .def_readwrite("tokens_per_second", &Result::tokens_per_second, "Generation speed after the first token.")
        .def_readwrite("prompt_tokens_per_second", &Result::prompt_tokens_per_second,
                       "Speed of evaluating the uncached prompt tokens.")
        .def_readwrite("time_to_first_token_ms", &Result::time_to_first_token_ms,
                       "Milliseconds from the call to the first generated token.")
        .def_readwrite("total_ms", &Result::total_ms, "Milliseconds the whole call took.")
        .def_readwrite("load_ms", &Result::load_ms, "How long loading the model took (once per model).")
        .def("__repr__", [](const Result & r) { return repr(r); });

    // ---- Stream
    py::class_<Stream>(m, "Stream", R"doc(The pieces of a streaming generation (stream=True), as an iterator of str.

Pieces never split a UTF-8 character and never hold any part of a stop string; joined, they are
result.content. Generation starts at the first next() and runs on a worker thread. Leaving the
loop early (break), close(), leaving a ``with`` block or dropping the last reference stops
generation; ``result`` then says finish_reason 'cancelled'. Ctrl-C while waiting for a piece
stops generation and raises KeyboardInterrupt.)doc")
        .def("__iter__", [](py::object self) { return self; })
        .def("__next__", &Stream::next, "The next piece; StopIteration at the end, or the generation's CortexError.")
        .def("close", &Stream::close, "Stops generation (if running) and waits for it to end.")
        .def("__enter__", [](py::object self) { return self; })
        .def(
            "__exit__", [](Stream & s, const py::args &) { s.close(); }, "Closes the stream.")
        .def_property_readonly("result", &Stream::result,
                               "The Result once the stream has ended (exhausted or closed), else None.");

    // ---- Model
    py::class_<Model, std::shared_ptr<Model>>(m, "Model", R"doc(A loaded model and its inference context.

Get one from ModelManager.load_model() or Model.load(). Every method may be called from any thread;
generation calls on one Model run one at a time (a second waits). The GIL is released while a
model loads or generates, so other Python threads keep running.)doc")
        .def_static(
            "load",
            [](const py::object & path, const std::optional<ModelConfig> & config) {
                ModelConfig c = config ? *config : ModelConfig();
                std::string p = to_path(path);
                py::gil_scoped_release release;
                return Model::load(p, c);
            },
            py::arg("path"), py::arg("config") = py::none(),
            "Loads the GGUF file at `path` in this process (never the daemon). Raises CortexError.")
        .def(
            "complete",
            [](std::shared_ptr<Model> self, const py::object & prompt, const std::optional<GenerationConfig> & config,
               bool stream) {
                GenerationConfig c = config_or_default(config);
                if (py::isinstance<py::str>(prompt)) {
                    std::string text = prompt.cast<std::string>();
                    return generate([self, text, c](const TokenCallback & cb) { return self->complete(text, c, cb); },
                                    stream);
                }
                if (!py::isinstance<py::sequence>(prompt)) {
                    throw py::type_error("prompt must be a str or a list of token ids");
                }
                std::vector<Token> tokens = prompt.cast<std::vector<Token>>();
                return generate([self, tokens, c](const TokenCallback & cb) { return self->complete(tokens, c, cb); },
                                stream);
            },
            py::arg("prompt"), py::arg("config") = py::none(), py::arg("stream") = false,
            R"doc(Generates a continuation of `prompt` (raw text with no chat template, or token ids from tokenize()).

Returns a Result, or with stream=True a Stream of str pieces whose .result is the Result.
Raises CortexError (e.g. InvalidArgumentError for bad config values, PromptTooLongError).)doc")
        .def(
            "chat",
            [](std::shared_ptr<Model> self, const py::object & messages, const std::optional<GenerationConfig> & config,
               bool stream) {
                GenerationConfig c = config_or_default(config);
                std::vector<Message> msgs = to_messages(messages);
                return generate([self, msgs, c](const TokenCallback & cb) { return self->chat(msgs, c, cb); }, stream);
            },
            py::arg("messages"), py::arg("config") = py::none(), py::arg("stream") = false,
            R"doc(Applies the model's chat template to `messages` and generates the assistant's reply.

`messages` is a list of {"role": "system"|"user"|"assistant", "content": str} dicts. Returns a
Result, or with stream=True a Stream of str pieces whose .result is the Result. A follow-up call
that repeats the conversation evaluates only the new tokens (Result.cached_tokens).)doc")
        .def(
            "apply_chat_template",
            [](const Model & self, const py::object & messages, bool add_generation_prompt) {
                std::vector<Message> msgs = to_messages(messages);
                std::string out;
                {
                    py::gil_scoped_release release;
                    out = self.apply_chat_template(msgs, add_generation_prompt);
                }
                return to_str(out);
            },
            py::arg("messages"), py::arg("add_generation_prompt") = true,
            "The prompt text that chat() evaluates for `messages`.")
        .def("tokenize", &Model::tokenize, py::arg("text"), py::arg("add_special") = true,
             py::arg("parse_special") = true, py::call_guard<py::gil_scoped_release>(),
             "Token ids of `text`. add_special adds BOS/EOS as the model wants; parse_special turns "
             "'<|im_end|>' and the like into their control tokens.")
        .def(
            "detokenize",
            [](const Model & self, const std::vector<Token> & tokens, bool render_special) {
                std::string out;
                {
                    py::gil_scoped_release release;
                    out = self.detokenize(tokens, render_special);
                }
                return to_str(out);
            },
            py::arg("tokens"), py::arg("render_special") = false,
            "The text of token ids; render_special includes control tokens' text.")
        .def("clear_cache", &Model::clear_cache, py::call_guard<py::gil_scoped_release>(),
             "Forgets the KV cache, so that the next call evaluates its whole prompt.")
        .def_property_readonly("path", &Model::path, "The GGUF file.")
        .def_property_readonly("config", &Model::config, "The ModelConfig it was loaded with.")
        .def_property_readonly("architecture", &Model::architecture, "GGUF general.architecture, e.g. 'qwen2'.")
        .def_property_readonly("description", &Model::description, "E.g. 'qwen2 0.5B Q4_K - Medium'.")
        .def_property_readonly("n_ctx", &Model::n_ctx, "The context window actually allocated.")
        .def_property_readonly("n_ctx_train", &Model::n_ctx_train, "The context length the model was trained with.")
        .def_property_readonly("n_vocab", &Model::n_vocab, "Tokens in the vocabulary.")
        .def_property_readonly("n_params", &Model::n_params, "Parameters.")
        .def_property_readonly("size_bytes", &Model::size_bytes, "Bytes of the weights.")
        .def_property_readonly("has_chat_template", &Model::has_chat_template,
                               "False: chat() uses the ChatML fallback.")
        .def_property_readonly("load_ms", &Model::load_ms, "How long loading took, in milliseconds.")
        .def("__repr__", [](const Model & self) {
            return "<cortex.llm.Model " + quoted(self.path()) + " (" + self.description() +
                   "), n_ctx=" + std::to_string(self.n_ctx()) + ">";
        });

    // ---- ModelManager
    py::class_<ModelManager>(m, "ModelManager", R"doc(Resolves model names, loads models and keeps them loaded.

A name resolves to an existing path, MODELS/<name>.gguf, the single .gguf in MODELS/<name>/, a
catalog alias (qwen2.5:7b) or a model in Ollama's store; MODELS is `models_dir`, else the
models_dir setting (CORTEX_MODELS_DIR, default $CORTEX_HOME/models). When a preload daemon
(cortex-preload) serves the same file with the same n_ctx, load_model() returns a Model that runs
on the daemon (CORTEX_PRELOAD=auto|off|required). Thread-safe.)doc")
        .def(py::init([](const py::object & models_dir) {
                 return std::make_unique<ModelManager>(models_dir.is_none() ? std::string() : to_path(models_dir));
             }),
             py::arg("models_dir") = py::none(), "Raises CortexError when the Cortex settings are bad.")
        .def(
            "load_model",
            [](ModelManager & self, const py::object & name, const std::optional<ModelConfig> & config) {
                ModelConfig c = config ? *config : ModelConfig();
                std::string n = to_path(name);
                py::gil_scoped_release release;
                return self.load_model(n, c);
            },
            py::arg("name"), py::arg("config") = py::none(),
            "Returns the loaded model (a name, or a .gguf path as str or os.PathLike), loading it first if needed. "
            "Raises CortexError "
            "(NotFoundError with a hint when nothing matches).")
        .def("resolve", &ModelManager::resolve, py::arg("name"), py::call_guard<py::gil_scoped_release>(),
             "The file `name` resolves to; raises NotFoundError naming every place looked at.")
        .def("unload", &ModelManager::unload, py::arg("name"), py::call_guard<py::gil_scoped_release>(),
             "Drops the manager's reference to the model; returns whether it had one. Handles stay valid.")
        .def("unload_all", &ModelManager::unload_all, py::call_guard<py::gil_scoped_release>(),
             "Drops every loaded model.")
        .def("loaded", &ModelManager::loaded, "Paths of the loaded models.")
        .def_property_readonly("models_dir", &ModelManager::models_dir, "Where names resolve.");

    // ---- Functions
    m.def(
        "quick_complete",
        [](const std::string & prompt, const std::optional<GenerationConfig> & config, const std::string & model) {
            GenerationConfig c = config_or_default(config);
            return run_blocking([&](const TokenCallback &) { return quick_complete(prompt, c, model); });
        },
        py::arg("prompt"), py::arg("config") = py::none(), py::arg("model") = "",
        R"doc(One-shot completion on `model` (empty = the default model, LLAMACPP_MODEL), through the preload
daemon when it serves it, else loaded once per process with the Cortex settings.)doc");
    m.def(
        "quick_chat",
        [](const std::string & message, const std::optional<GenerationConfig> & config, const std::string & model) {
            GenerationConfig c = config_or_default(config);
            return run_blocking([&](const TokenCallback &) { return quick_chat(message, c, model); });
        },
        py::arg("message"), py::arg("config") = py::none(), py::arg("model") = "",
        "One-shot chat: `message` as the user's turn, like quick_complete().");
    m.def("set_log_level", &set_log_level, py::arg("level"),
          "libllama's and Cortex's log threshold: 'error' (default), 'warn', 'info' or 'debug'.");
    m.def("cortex_home", &cortex_home, "$CORTEX_HOME, or ~/.cortex when unset.");
    m.def("default_model_name", &default_model_name,
          "The default model (the model setting, LLAMACPP_MODEL); NotFoundError with a hint when unset.");

    // For bench/bench_python.py: `n` timed C++ calls of Model::complete on the same model, in
    // nanoseconds each, so that Python's overhead is measured against C++ in one process.
    m.def(
        "_bench_complete",
        [](std::shared_ptr<Model> model, const std::string & prompt, const GenerationConfig & config, int n) {
            std::vector<long long> ns;
            py::gil_scoped_release release;
            for (int i = 0; i < n; ++i) {
                auto t0 = std::chrono::steady_clock::now();
                model->complete(prompt, config);
                auto t1 = std::chrono::steady_clock::now();
                ns.push_back(std::chrono::duration_cast<std::chrono::nanoseconds>(t1 - t0).count());
            }
            return ns;
        },
        py::arg("model"), py::arg("prompt"), py::arg("config"), py::arg("n"),
        "Times `n` C++ Model::complete calls (ns each); for bench/bench_python.py.");
}
