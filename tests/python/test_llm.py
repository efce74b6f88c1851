"""End-to-end tests of Python's cortex.llm on generated models (random weights, real tokenizers).

Run by CTest (tests/CMakeLists.txt) as /usr/bin/python3 -m pytest with PYTHONPATH at the build
tree's python/ and CORTEX_TEST_MODELS_DIR, CORTEX_PRELOAD_BIN, CORTEX_CHAT_EXAMPLE set.
"""

import ast
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import time

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.path.join(REPO, "build", "cortex")
MODELS = os.path.abspath(os.environ.get("CORTEX_TEST_MODELS_DIR", os.path.join(BUILD, "test-models")))
PRELOAD_BIN = os.path.abspath(os.environ.get("CORTEX_PRELOAD_BIN", os.path.join(BUILD, "cortex-preload")))
CHAT_EXAMPLE = os.path.abspath(os.environ.get("CORTEX_CHAT_EXAMPLE", os.path.join(BUILD, "cortex-chat-example")))
TINY = os.path.join(MODELS, "tiny-qwen2.gguf")
N_CTX = 1024

# Nothing here may meet a developer's own settings, models or daemon.
_HOME = tempfile.mkdtemp(prefix="cortex-pytest-")
os.environ["CORTEX_HOME"] = _HOME
os.environ["XDG_RUNTIME_DIR"] = os.path.join(_HOME, "xdg")
os.environ["CORTEX_PRELOAD"] = "off"
os.environ["LLAMACPP_N_THREADS"] = "1"
for var in ("CORTEX_PRELOAD_SOCKET", "LLAMACPP_MODEL", "OLLAMA_MODEL", "CORTEX_MODELS_DIR", "LLAMACPP_N_CTX"):
    os.environ.pop(var, None)
os.makedirs(os.environ["XDG_RUNTIME_DIR"], mode=0o700)

import cortex.llm as llm  # noqa: E402  (after the environment is set)
from cortex.llm import CortexError, GenerationConfig, ModelConfig, ModelManager  # noqa: E402


def teardown_module(module):
    shutil.rmtree(_HOME, ignore_errors=True)


def greedy(max_tokens=24, **kw):
    return GenerationConfig(max_tokens=max_tokens, temperature=0, **kw)


@pytest.fixture(scope="module")
def manager():
    return ModelManager()


@pytest.fixture(scope="module")
def model(manager):
    return manager.load_model(TINY, ModelConfig(n_ctx=N_CTX))


def child_env(**extra):
    env = dict(os.environ)
    package_root = os.path.dirname(os.path.dirname(os.path.abspath(llm.__file__)))
    env["PYTHONPATH"] = os.pathsep.join([package_root] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    env.update(extra)
    return env


# ---- The module's shape ------------------------------------------------------------------


def stub_names():
    """Top-level names and class members the .pyi stub declares."""
    with open(os.path.join(os.path.dirname(llm.__file__), "__init__.pyi")) as f:
        tree = ast.parse(f.read())
    names, members = set(), {}
    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            names.add(node.name)
            members[node.name] = {
                n.target.id if isinstance(n, ast.AnnAssign) else n.name
                for n in node.body
                if isinstance(n, (ast.FunctionDef, ast.AnnAssign))
            }
        elif isinstance(node, ast.FunctionDef):
            names.add(node.name)
        elif isinstance(node, ast.AnnAssign):
            names.add(node.target.id)
    return names, members


def test_stub_matches_module():
    names, members = stub_names()
    exported = set(llm.__all__)
    aliases = {"FinishReason", "FlashAttention", "Messages", "PathLike", "SplitMode"}  # type aliases of the stub only
    assert names - aliases == exported
    for name in ("GenerationConfig", "ModelConfig", "Result", "Model", "ModelManager", "Stream"):
        cls = getattr(llm, name)
        public = {m for m in dir(cls) if not m.startswith("_")}
        declared = {m for m in members[name] if not m.startswith("_")}
        assert declared == public, name


def test_docstrings_everywhere():
    for name in llm.__all__:
        obj = getattr(llm, name)
        if name == "FINISH_REASONS":
            continue
        assert obj.__doc__ and obj.__doc__.strip(), name
        if isinstance(obj, type) and not issubclass(obj, BaseException):
            for member in dir(obj):
                if member.startswith("_"):
                    continue
                assert getattr(obj, member).__doc__, f"{name}.{member}"


# ---- Configs and results -----------------------------------------------------------------

GENERATION_DEFAULTS = dict(max_tokens=256, temperature=0.8, top_p=0.95, top_k=40, min_p=0.05, repeat_penalty=1.0,
                           repeat_last_n=64, seed=4294967295, stop=[], grammar="", json_schema="", ignore_eos=False,
                           cache_prompt=True)


def test_generation_config_defaults_are_the_cpp_ones():
    config = GenerationConfig()
    for field, value in GENERATION_DEFAULTS.items():
        assert getattr(config, field) == value, field
    assert config == GenerationConfig()
    for field in GENERATION_DEFAULTS:
        assert f"{field}=" in repr(config)


def test_generation_config_every_field_as_keyword_and_attribute():
    values = dict(max_tokens=7, temperature=0.25, top_p=0.5, top_k=3, min_p=0.1, repeat_penalty=1.25, repeat_last_n=8,
                  seed=42, stop=["\n", "END"], grammar='root ::= "a"', json_schema='{"type": "string"}',
                  ignore_eos=True, cache_prompt=False)
    config = GenerationConfig(**values)
    for field, value in values.items():
        assert getattr(config, field) == value, field
    other = GenerationConfig()
    for field, value in values.items():
        setattr(other, field, value)
    assert other == config
    assert "max_tokens=7" in repr(config) and "stop=['\\n', 'END']" in repr(config)


def test_generation_config_bad_values():
    with pytest.raises(TypeError):
        GenerationConfig(max_token=3)  # a typo is not ignored
    with pytest.raises(TypeError):
        GenerationConfig(3)  # keywords only
    with pytest.raises(TypeError):
        GenerationConfig(max_tokens="many")
    with pytest.raises(TypeError):
        GenerationConfig(stop=[1])
    with pytest.raises(ValueError):
        GenerationConfig(seed=-2)
    assert GenerationConfig(seed=-1).seed == 4294967295
    assert GenerationConfig(stop="\n").stop == ["\n"]


def test_model_config_fields():
    config = ModelConfig()
    assert (config.n_ctx, config.n_gpu_layers, config.n_threads, config.n_batch, config.flash_attention,
            config.use_mmap) == (4096, -1, 0, 512, "auto", True)
    assert (config.split_mode, config.tensor_split, config.main_gpu, config.rpc_servers,
            config.rpc_allow_remote) == ("layer", [], 0, [], False)
    config = ModelConfig(n_ctx=256, n_gpu_layers=0, n_threads=1, n_batch=64, flash_attention="off", use_mmap=False,
                         split_mode="row", tensor_split=[3, 1.5], main_gpu=1, rpc_servers=["127.0.0.1:50052"],
                         rpc_allow_remote=True)
    assert repr(config) == ("ModelConfig(n_ctx=256, n_gpu_layers=0, n_threads=1, n_batch=64, flash_attention='off', "
                            "use_mmap=False, split_mode='row', tensor_split=[3.0, 1.5], main_gpu=1, "
                            "rpc_servers=['127.0.0.1:50052'], rpc_allow_remote=True)")
    other = ModelConfig()
    for field in ("n_ctx", "n_gpu_layers", "n_threads", "n_batch", "flash_attention", "use_mmap", "split_mode",
                  "tensor_split", "main_gpu", "rpc_servers", "rpc_allow_remote"):
        setattr(other, field, getattr(config, field))
    assert other == config and other != ModelConfig()
    with pytest.raises(ValueError):
        ModelConfig(flash_attention="sometimes")
    with pytest.raises(ValueError):
        ModelConfig(split_mode="diagonal")
    with pytest.raises(TypeError):
        ModelConfig(rpc_servers="127.0.0.1:50052")


def test_model_properties(model):
    assert model.path == TINY
    assert model.architecture == "qwen2"
    assert model.n_ctx == N_CTX and model.config.n_ctx == N_CTX
    assert model.n_vocab > 100000  # Qwen2's real tokenizer
    assert model.n_ctx_train > 0 and model.n_params > 0 and model.size_bytes > 0
    assert model.has_chat_template
    assert model.load_ms > 0 and model.description
    assert "tiny-qwen2.gguf" in repr(model)
    import pathlib
    assert ModelManager(pathlib.Path(MODELS)).load_model(pathlib.Path(TINY), ModelConfig(n_ctx=N_CTX)).path == TINY
    assert ModelManager(MODELS).load_model("tiny-qwen2", ModelConfig(n_ctx=N_CTX)).n_vocab == model.n_vocab


def test_result_has_every_field(model):
    r = model.chat([{"role": "user", "content": "Install nginx"}], greedy(8))
    assert isinstance(r, llm.Result)
    assert isinstance(r.content, str) and r.content
    assert r.finish_reason in llm.FINISH_REASONS
    for field in ("prompt_tokens", "cached_tokens", "completion_tokens"):
        assert isinstance(getattr(r, field), int), field
    for field in ("tokens_per_second", "prompt_tokens_per_second", "time_to_first_token_ms", "total_ms", "load_ms"):
        assert isinstance(getattr(r, field), float), field
    assert r.prompt_tokens > 0 and 0 < r.completion_tokens <= 8 and r.total_ms > 0
    for field in ("content", "finish_reason", "prompt_tokens", "cached_tokens", "completion_tokens",
                  "tokens_per_second", "prompt_tokens_per_second", "time_to_first_token_ms", "total_ms", "load_ms"):
        assert f"{field}=" in repr(r), field
    # A follow-up that repeats the conversation reuses the cache.
    again = model.chat([{"role": "user", "content": "Install nginx"}], greedy(8))
    assert again.cached_tokens > 0 and again.content == r.content


def test_tokenize_detokenize_and_template(model):
    tokens = model.tokenize("Install nginx")
    assert all(isinstance(t, int) for t in tokens)
    assert model.detokenize(tokens) == "Install nginx"
    prompt = model.apply_chat_template([{"role": "user", "content": "hi"}])
    assert "<|im_start|>user\nhi<|im_end|>" in prompt and prompt.endswith("<|im_start|>assistant\n")
    assert model.tokenize("<|im_end|>", add_special=False) != model.tokenize("<|im_end|>", False, False)


# ---- Generation --------------------------------------------------------------------------


def test_greedy_is_deterministic(model):
    a = model.complete("The package manager", greedy(24))
    model.clear_cache()
    b = model.complete("The package manager", greedy(24))
    assert a.content == b.content and a.completion_tokens == b.completion_tokens
    # Prompt as text or as tokens: the same generation.
    c = model.complete(model.tokenize("The package manager"), greedy(24))
    assert c.content == a.content


def test_same_answer_as_the_cpp_example(model):
    """cortex-chat-example (C++) chats with max_tokens 64, temperature 0.7, seed 42."""
    out = subprocess.run([CHAT_EXAMPLE, TINY, "Install nginx"], capture_output=True, text=True, timeout=120,
                         env=child_env()).stdout
    cpp = out.split("> Install nginx\n", 1)[1].rsplit("\n[", 1)[0]
    r = model.chat([{"role": "user", "content": "Install nginx"}],
                   GenerationConfig(max_tokens=64, temperature=0.7, seed=42))
    assert r.content == cpp


def test_stream_pieces_join_to_the_content(model):
    messages = [{"role": "user", "content": "Install docker"}]
    whole = model.chat(messages, greedy(32))
    stream = model.chat(messages, greedy(32), stream=True)
    assert stream.result is None
    pieces = list(stream)
    assert len(pieces) > 1 and all(isinstance(p, str) for p in pieces)
    assert "".join(pieces) == whole.content == stream.result.content
    assert stream.result.completion_tokens == whole.completion_tokens
    assert list(stream) == []  # exhausted stays exhausted
    completed = model.complete("Hello", greedy(16), stream=True)
    text = "".join(completed)
    assert "".join(model.complete("Hello", greedy(16), True)) == text  # stream as a positional argument
    assert text == completed.result.content == model.complete("Hello", greedy(16)).content


def test_stop_strings_never_reach_the_stream(model):
    free = model.complete("Hello", greedy(32)).content
    stop = free[len(free) // 2:][:2]
    assert stop
    stream = model.complete("Hello", greedy(32, stop=[stop]), stream=True)
    text = "".join(stream)
    assert stop not in text and text == free[:free.index(stop)]
    assert stream.result.finish_reason == "stop"


def test_abandoned_stream_cancels_generation(model):
    long = GenerationConfig(max_tokens=N_CTX - 64, temperature=0, ignore_eos=True)
    start = time.monotonic()
    for _ in model.complete("Tell me a long story", long, stream=True):
        break  # the stream is dropped here
    with model.complete("Tell me a long story", long, stream=True) as stream:
        next(stream)
    assert stream.result.finish_reason == "cancelled"
    assert stream.result.completion_tokens < long.max_tokens
    stream = model.complete("Tell me a long story", long, stream=True)
    next(stream)
    stream.close()
    assert stream.result.finish_reason == "cancelled"
    # The model is free again at once, not after 900 tokens of a stream nobody reads.
    r = model.complete("Hi", greedy(4))
    assert r.completion_tokens > 0
    full = model.complete("Tell me a long story", long)
    assert full.completion_tokens == long.max_tokens
    assert time.monotonic() - start < 2 * full.total_ms / 1000 + 5


def test_stream_never_started_costs_nothing(model):
    stream = model.complete("Hello", greedy(4), stream=True)
    del stream
    assert model.complete("Hello", greedy(4)).completion_tokens > 0


def test_gil_released_while_generating(model):
    ticks = [0]
    stop = threading.Event()

    def spin():
        while not stop.is_set():
            ticks[0] += 1

    t = threading.Thread(target=spin)
    t.start()
    try:
        time.sleep(0.05)
        before = ticks[0]
        r = model.complete("Tell me a story", GenerationConfig(max_tokens=200, temperature=0, ignore_eos=True))
        during = ticks[0] - before
        before = ticks[0]
        stream_text = "".join(model.complete("Tell me a story", greedy(200, ignore_eos=True), stream=True))
        during_stream = ticks[0] - before
    finally:
        stop.set()
        t.join()
    assert r.total_ms > 50
    assert stream_text == r.content
    # With the GIL held through generation the other thread would not count at all.
    assert during > 10000 and during_stream > 10000, (during, during_stream)


def test_parallel_threads_each_correct(manager):
    a = manager.load_model(TINY, ModelConfig(n_ctx=N_CTX))
    expected = a.complete("Install nginx", greedy(16)).content
    results = []

    def work():
        results.append(a.complete("Install nginx", greedy(16)).content)

    threads = [threading.Thread(target=work) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [expected] * 3


# ---- Errors ------------------------------------------------------------------------------


def test_missing_model_is_not_found_with_a_hint(manager):
    with pytest.raises(CortexError) as info:
        manager.load_model("qwen2.5-7b")
    e = info.value
    assert isinstance(e, llm.NotFoundError) and isinstance(e, Exception)
    assert e.code == "not_found"
    assert "qwen2.5-7b" in e.message
    assert "cortex-model download qwen2.5-7b" in e.hint
    assert e.hint in str(e)


def test_bad_values_are_errors(model):
    with pytest.raises(llm.InvalidArgumentError) as info:
        model.complete("Hi", GenerationConfig(max_tokens=0))
    assert info.value.code == "invalid_argument" and info.value.hint
    assert isinstance(info.value, ValueError)
    with pytest.raises(CortexError) as info:
        model.complete("Hi", GenerationConfig(temperature=-1))
    assert info.value.code == "invalid_argument"
    with pytest.raises(CortexError) as info:
        model.chat([{"role": "wizard", "content": "hi"}])
    assert info.value.code == "invalid_argument"
    with pytest.raises(llm.InvalidGrammarError):
        model.complete("Hi", GenerationConfig(grammar="root ::= ("))
    with pytest.raises(llm.PromptTooLongError):
        model.complete("word " * (N_CTX + 10), greedy(4))
    with pytest.raises(CortexError) as info:
        ModelManager().load_model(TINY, ModelConfig(n_ctx=0))
    assert info.value.code == "invalid_argument"
    with pytest.raises(CortexError) as info:
        llm.set_log_level("loud")
    assert info.value.code == "invalid_argument"
    with pytest.raises(CortexError) as info:
        llm.quick_complete("Hi")
    assert info.value.code == "not_found" and "LLAMACPP_MODEL" in info.value.hint


def test_bad_python_arguments_are_type_and_value_errors(model):
    with pytest.raises(TypeError):
        model.chat("hello")
    with pytest.raises(TypeError):
        model.chat([("user", "hello")])
    with pytest.raises(ValueError):
        model.chat([{"role": "user"}])
    with pytest.raises(TypeError):
        model.chat([{"role": "user", "content": 3}])
    with pytest.raises(TypeError):
        model.complete(3.5)
    with pytest.raises(TypeError):
        model.complete("Hi", config={"max_tokens": 3})


def test_error_in_a_stream_comes_at_the_first_piece(model):
    stream = model.complete("Hi", GenerationConfig(max_tokens=0), stream=True)
    with pytest.raises(llm.InvalidArgumentError):
        next(stream)
    assert stream.result is None
    assert list(stream) == []


def test_invalid_model_file(tmp_path):
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"not a model")
    with pytest.raises(llm.InvalidModelError) as info:
        ModelManager().load_model(str(bad))
    assert info.value.code == "invalid_model"


# ---- The guide's snippet, Ctrl-C: separate processes -------------------------------------

GUIDE_SNIPPET = """\
from cortex.llm import ModelManager, GenerationConfig, quick_complete, quick_chat
result = quick_complete("Explain how to install nginx")
manager = ModelManager()
model = manager.load_model("qwen2.5-7b")
config = GenerationConfig(max_tokens=512, temperature=0.7)
result = model.chat([{"role": "user", "content": "Install docker"}], config=config)
print(result.content)
print(f"Tokens/sec: {result.tokens_per_second:.1f}")
"""


def guide_home(tmp_path):
    home = tmp_path / "home"
    (home / "models").mkdir(parents=True)
    os.symlink(TINY, home / "models" / "qwen2.5-7b.gguf")
    return home


def test_guide_snippet_runs_verbatim(tmp_path):
    home = guide_home(tmp_path)
    script = tmp_path / "guide.py"
    script.write_text(GUIDE_SNIPPET)
    env = child_env(CORTEX_HOME=str(home), LLAMACPP_MODEL="qwen2.5-7b", LLAMACPP_N_CTX="1024", CORTEX_PRELOAD="auto")
    p = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300, env=env)
    assert p.returncode == 0, p.stderr
    assert re.search(r"^Tokens/sec: [0-9]+\.[0-9]$", p.stdout, re.M), p.stdout


CTRL_C_CHILD = """\
import sys, time
from cortex.llm import ModelManager, ModelConfig, GenerationConfig
model = ModelManager().load_model(sys.argv[1], ModelConfig(n_ctx=8192))
long = GenerationConfig(max_tokens=8000, temperature=0, ignore_eos=True)
t0 = time.monotonic()
try:
    print("generating", flush=True)
    if sys.argv[2] == "stream":
        for piece in model.complete("Tell me a long story", long, stream=True):
            pass
    else:
        model.complete("Tell me a long story", long)
    print("finished", flush=True)
except KeyboardInterrupt:
    print("interrupted at", time.monotonic(), flush=True)  # CLOCK_MONOTONIC: the same clock as the parent's
    r = model.complete("Hi", GenerationConfig(max_tokens=4, temperature=0))
    print("usable", r.completion_tokens, flush=True)
"""


@pytest.mark.parametrize("mode", ["blocking", "stream"])
def test_ctrl_c_stops_generation(tmp_path, mode):
    script = tmp_path / "child.py"
    script.write_text(CTRL_C_CHILD)
    p = subprocess.Popen([sys.executable, str(script), TINY, mode], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True, env=child_env())
    assert p.stdout.readline() == "generating\n"
    time.sleep(0.5)
    sent = time.monotonic()
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=60)
    assert "interrupted at" in out, (out, err)
    assert "usable 4" in out, (out, err)
    caught = float(re.search(r"interrupted at ([0-9.]+)", out).group(1))
    assert caught - sent < 1.0, caught - sent  # the rest of 8000 tokens would take many seconds


# ---- The preload daemon ------------------------------------------------------------------


@pytest.fixture
def daemon(tmp_path):
    sock = str(tmp_path / "preload.sock")
    env = child_env(LLAMACPP_N_CTX=str(N_CTX))
    env.pop("CORTEX_PRELOAD", None)
    subprocess.run([PRELOAD_BIN, "start", "--socket", sock, "--model", TINY, "--parallel", "2"], check=True,
                   timeout=120, env=env, capture_output=True)
    saved = {k: os.environ.get(k) for k in ("CORTEX_PRELOAD", "CORTEX_PRELOAD_SOCKET", "LLAMACPP_N_CTX")}
    os.environ.update(CORTEX_PRELOAD="required", CORTEX_PRELOAD_SOCKET=sock, LLAMACPP_N_CTX=str(N_CTX))
    yield sock
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
    subprocess.run([PRELOAD_BIN, "stop", "--socket", sock], timeout=60, env=env, capture_output=True)


def daemon_served(sock):
    out = subprocess.run([PRELOAD_BIN, "status", "--socket", sock, "--json"], capture_output=True, text=True,
                         timeout=30).stdout
    m = re.search(r'"requests_served":\s*(\d+)', out)
    return int(m.group(1)) if m else -1


def test_through_the_daemon(daemon):
    model = llm.Model.load(TINY, ModelConfig(n_ctx=N_CTX))  # in-process, always
    remote = ModelManager().load_model(TINY, ModelConfig(n_ctx=N_CTX))
    served = daemon_served(daemon)
    messages = [{"role": "user", "content": "Install nginx"}]
    r = remote.chat(messages, greedy(24))
    assert daemon_served(daemon) == served + 1
    assert r.content == model.chat(messages, greedy(24)).content
    stream = remote.chat(messages, greedy(24), stream=True)
    assert "".join(stream) == r.content == stream.result.content
    # Abandoned on the daemon: cancelled there, and the next call answers.
    long = GenerationConfig(max_tokens=N_CTX - 64, temperature=0, ignore_eos=True)
    with remote.complete("Tell me a long story", long, stream=True) as s:
        next(s)
    assert s.result.finish_reason == "cancelled"
    assert remote.complete("Hi", greedy(4)).completion_tokens > 0
    q = llm.quick_chat("Install nginx", greedy(24), model=TINY)
    assert q.content == r.content


def test_required_daemon_missing(tmp_path, monkeypatch):
    monkeypatch.setenv("CORTEX_PRELOAD", "required")
    monkeypatch.setenv("CORTEX_PRELOAD_SOCKET", str(tmp_path / "none.sock"))
    with pytest.raises(llm.NotFoundError) as info:
        ModelManager().load_model(TINY, ModelConfig(n_ctx=N_CTX))
    assert "cortex-preload start" in info.value.hint


# ---- Installed ---------------------------------------------------------------------------


@pytest.mark.skipif(not os.environ.get("CORTEX_BUILD_DIR"), reason="CORTEX_BUILD_DIR (a complete build) not set")
def test_installs_into_dist_packages(tmp_path):
    prefix = tmp_path / "prefix"
    subprocess.run(["cmake", "--install", os.environ["CORTEX_BUILD_DIR"], "--prefix", str(prefix)], check=True,
                   capture_output=True, timeout=120)
    site = prefix / "lib" / f"python{sys.version_info[0]}.{sys.version_info[1]}" / "dist-packages"
    for name in ("cortex/__init__.py", "cortex/py.typed", "cortex/llm/__init__.py", "cortex/llm/__init__.pyi",
                 "cortex/llm/py.typed"):
        assert (site / name).is_file(), name
    code = ("import sys, cortex.llm as l; assert l.__file__.startswith(sys.argv[2]), l.__file__; "
            "m = l.Model.load(sys.argv[1], l.ModelConfig(n_ctx=256)); "
            "print(m.complete('Hi', l.GenerationConfig(max_tokens=2)).completion_tokens)")
    env = child_env(PYTHONPATH=str(site))  # what /usr/local's dist-packages is on Debian's sys.path
    env["PYTHONPATH"] = str(site)
    p = subprocess.run([sys.executable, "-c", code, TINY, str(site)], capture_output=True, text=True, timeout=120,
                       env=env, cwd=str(tmp_path))
    assert p.returncode == 0 and p.stdout.strip() == "2", p.stderr
