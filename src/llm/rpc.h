// The ggml RPC backend as Cortex uses it: endpoint checks, a handshake probe before libllama
// connects (ggml-rpc aborts the process on a failed connection), device registration, and the
// device list a split model loads onto.
#pragma once

#include <string>
#include <vector>

#include "cortex/llm.h"
#include "ggml-backend.h"

namespace cortex::llm {

// Connects to `endpoint` and does the RPC handshake (protocol version check), within
// `timeout_ms` for the connection and as long again for the answer. Throws Error(kNetwork)
// naming host:port: refused, unreachable, no answer (busy with another client, or not an RPC
// server), or another protocol version.
void probe_rpc_server(const std::string & endpoint, int timeout_ms);

// Probes each server, then registers its devices with ggml (once per process per endpoint) and
// returns them in order. Throws Error: kInvalidArgument when this llama.cpp build has no RPC
// backend, kNetwork naming the first server that does not answer.
std::vector<ggml_backend_dev_t> rpc_server_devices(const std::vector<std::string> & endpoints);

// The devices for llama_model_params.devices, null-terminated: the configured RPC servers'
// devices, then the local GPUs as libllama would pick them. Empty when no RPC server was ever
// registered in this process and none is configured: libllama's own default selection then
// applies unchanged. (Once one is registered, libllama would add it to every model, so the list
// is always explicit from then on.)
std::vector<ggml_backend_dev_t> model_devices(const ModelConfig & config);

// What the process does when ggml-rpc aborts because servers went away mid-request. `handler`
// gets the servers that no longer answer (all configured ones when none can be told apart) and
// must not return: ggml-rpc cannot go on inside this process. The preload daemon answers its
// clients and replaces itself (exec) without those servers. Without a handler the process ends
// with status 75 (EX_TEMPFAIL) after saying which server went away.
using RpcLostHandler = void (*)(const std::vector<std::string> & lost);
void set_rpc_lost_handler(RpcLostHandler handler);

// ggml-rpc waits forever on a server that stops answering. This gives its connections to
// `endpoints` (the sockets are this process's) a time limit, CORTEX_RPC_TIMEOUT_S (default 120 s,
// 0 = none), so that a silent server ends like a lost one: an error that names it.
void limit_rpc_waits(const std::vector<std::string> & endpoints);

// "a,b,c": the form parse_rpc_servers() reads.
std::string join_endpoints(const std::vector<std::string> & endpoints);

}  // namespace cortex::llm
