#include "interpreter/apt_simulation.h"

#include <algorithm>
#include <regex>

#include "core/file_util.h"
#include "core/subprocess.h"
#include "cortex/error.h"
#include "cortex/llm.h"

namespace cortex::interpreter {

// Debian policy 5.6.1: lower-case letters, digits, '+', '-', '.'; at least two characters,
// starting with an alphanumeric. With an optional ":arch" and "=version" (policy 5.6.12).
// Or "/RELEASE" instead of "=version", or the absolute path of a local .deb (apt reads an argument
// with a '/' and a .deb suffix as a file): nothing that apt could take for an option.
static bool valid_package_argument(const std::string & s) {
    static const std::regex re(R"([a-z0-9][a-z0-9+.\-]+(:[a-z0-9\-]+)?(=[A-Za-z0-9.+~:\-]+|/[A-Za-z0-9._\-]+)?)");
    if (s.starts_with("/") && s.ends_with(".deb")) {
        return std::none_of(s.begin(), s.end(), [](char c) { return static_cast<unsigned char>(c) < 0x20; });
    }
    return std::regex_match(s, re);
}

std::vector<std::string> apt_command(Operation op, const std::vector<std::string> & packages) {
    if (packages.empty() && op != Operation::kUpgrade) {
        throw Error(ErrorCode::kInvalidArgument, "no package to " + std::string(operation_name(op)),
                    "name at least one package");
    }
    // Upgrading named packages is an install that may only upgrade; upgrading everything is
    // apt-get upgrade, which neither installs new packages nor removes any.
    const bool upgrade_all = op == Operation::kUpgrade && packages.empty();
    std::vector<std::string> argv = {
        "apt-get", upgrade_all ? "upgrade" : (op == Operation::kRemove ? "remove" : "install"), "-y", "-q"};
    if (op == Operation::kUpgrade && !upgrade_all) argv.push_back("--only-upgrade");
    if (op != Operation::kRemove) {
        // An install must never remove anything: a conflict that needs a removal fails instead.
        if (!upgrade_all) argv.push_back("--no-remove");
        // A version the user named (or a rollback's old one) may be older than the installed
        // one: apt-get -y refuses any downgrade unless told; the plan shows it as a downgrade
        // before anything runs.
        if (std::any_of(packages.begin(), packages.end(), [](const std::string & p) {
                return !p.starts_with("/") && p.find_first_of("=/") != std::string::npos;
            }))
            argv.push_back("--allow-downgrades");
        // With no terminal, a question about a locally changed configuration file would fail
        // the run; keep the user's file, as apt's default answer does.
        for (const char * o : {"Dpkg::Options::=--force-confdef", "Dpkg::Options::=--force-confold"}) {
            argv.push_back("-o");
            argv.push_back(o);
        }
    }
    for (const std::string & p : packages) {
        if (!valid_package_argument(p)) {
            throw Error(ErrorCode::kInvalidArgument, "'" + p + "' is not a Debian package name",
                        "package names use lower-case letters, digits, '+', '-' and '.'");
        }
        argv.push_back(p);
    }
    return argv;
}

std::vector<std::string> command_packages(const std::vector<std::string> & argv) {
    std::vector<std::string> packages;
    for (size_t i = 2; i < argv.size(); ++i) {
        if (argv[i] == "-o") {
            ++i;  // the option's value
        } else if (!argv[i].starts_with("-")) {
            packages.push_back(argv[i]);
        }
    }
    return packages;
}

// "Inst nginx-common (1.22.1-9 Debian:12.5/stable [all])"
// "Inst libc6 [2.36-9] (2.36-9+deb12u4 Debian:12.5/stable [amd64]) []"
// "Remv bash [5.2.15-2+b8]"
std::vector<PackageChange> parse_simulation(const std::string & output) {
    static const std::regex inst(R"(^Inst (\S+) (?:\[([^\]]*)\] )?\((\S+) [^\[]*\[([^\]]+)\]\).*$)");
    static const std::regex remv(R"(^Remv (\S+)(?: \[([^\]]*)\])?.*$)");
    std::vector<PackageChange> out;
    size_t pos = 0;
    while (pos < output.size()) {
        size_t end = output.find('\n', pos);
        if (end == std::string::npos) end = output.size();
        std::string line = output.substr(pos, end - pos);
        pos = end + 1;
        std::smatch m;
        PackageChange c;
        if (std::regex_match(line, m, inst)) {
            c.name = m[1];
            c.old_version = m[2];
            c.new_version = m[3];
            c.architecture = m[4];
            if (c.old_version.empty()) {
                c.kind = PackageChange::Kind::kInstall;
            } else if (c.old_version == c.new_version) {
                c.kind = PackageChange::Kind::kReinstall;
            } else {
                // apt prints downgrades as Inst too; the planner tells them apart with dpkg's
                // version order, which it has from the index.
                c.kind = PackageChange::Kind::kUpgrade;
            }
        } else if (std::regex_match(line, m, remv)) {
            c.kind = PackageChange::Kind::kRemove;
            c.name = m[1];
            c.old_version = m[2];
        } else {
            continue;
        }
        // apt prints "name:arch" only for foreign architectures.
        if (size_t colon = c.name.find(':'); colon != std::string::npos) {
            if (c.architecture.empty()) c.architecture = c.name.substr(colon + 1);
            c.name.resize(colon);
        }
        if (c.name.empty()) continue;  // "Inst :amd64 ...": no package to show or to size
        out.push_back(std::move(c));
    }
    return out;
}

// apt's explanation, without the progress lines, at most `max_lines` lines.
static std::string apt_errors(const std::string & output, size_t max_lines = 12) {
    std::vector<std::string_view> lines;
    size_t pos = 0;
    while (pos < output.size()) {
        size_t end = output.find('\n', pos);
        if (end == std::string::npos) end = output.size();
        std::string_view line(output.data() + pos, end - pos);
        if (line.starts_with("E: ") || line.starts_with(" ") || line.find("Depends:") != std::string_view::npos) {
            lines.push_back(line);
        }
        pos = end + 1;
    }
    std::string errors;
    for (size_t i = 0; i < lines.size() && i < max_lines; ++i)
        errors += (errors.empty() ? "" : "\n") + std::string(lines[i]);
    // apt's final "E:" line says what happened; keep it even when the detail is cut.
    if (lines.size() > max_lines) {
        errors +=
            "\n  ... " + std::to_string(lines.size() - max_lines) + " more lines ...\n" + std::string(lines.back());
    }
    return errors.empty() ? output : errors;
}

// Where apt may keep its binary cache for our simulations. Container images often disable
// apt's cache (Dir::Cache::pkgcache ""), and then every apt-get rebuilds it from the lists:
// most of a second each time. Empty: apt's own cache is enabled, use it.
static std::string simulation_pkgcache() {
    static const std::string path = [] {
        ProcessResult r = run_process({"apt-config", "shell", "X", "Dir::Cache::pkgcache"});
        if (r.exit_status != 0 || r.output.find("X=''") == std::string::npos) return std::string();
        const std::string dir = llm::cortex_home() + "/cache";
        try {
            make_dirs(dir);
        } catch (const Error &) {
            return std::string();  // only slower
        }
        return dir + "/apt-pkgcache.bin";
    }();
    return path;
}

Simulation simulate(Operation op, const std::vector<std::string> & packages) {
    return simulate_command(apt_command(op, packages));
}

Simulation simulate_command(std::vector<std::string> argv) {
    if (argv.size() < 3 || argv[0] != "apt-get" ||
        (argv[1] != "install" && argv[1] != "remove" && argv[1] != "upgrade") || argv[2] != "-y") {
        throw Error(ErrorCode::kInvalidArgument, "a plan command is not an apt-get install, remove or upgrade",
                    "the plan is damaged");
    }
    const Operation op =
        argv[1] == "remove" ? Operation::kRemove : (argv[1] == "upgrade" ? Operation::kUpgrade : Operation::kInstall);
    for (const std::string & p : command_packages(argv)) {
        if (!valid_package_argument(p)) {
            throw Error(ErrorCode::kInvalidArgument, "'" + p + "' is not a Debian package name", "the plan is damaged");
        }
    }
    // -s instead of -y: with -y apt refuses outright to simulate removing essential packages,
    // and the planner must see that transaction to explain its own refusal.
    argv[2] = "-s";
    if (const std::string cache = simulation_pkgcache(); !cache.empty()) {
        argv.insert(argv.begin() + 3, {"-o", "Dir::Cache::pkgcache=" + cache});
    }
    // Simulation runs as any user: apt prints a note about it on stderr, nothing else changes.
    ProcessResult r = run_process(argv, {{"LC_ALL", "C"}});
    if (r.exit_status != 0) {
        if (r.output.find("Unable to locate package") != std::string::npos) {
            throw Error(
                ErrorCode::kNotFound,
                "apt does not know a package of " + std::string(operation_name(op)) + ": " + apt_errors(r.output),
                "run `apt-get update` to refresh the package lists");
        }
        if (op == Operation::kRemove && r.output.find("generated breaks") != std::string::npos) {
            throw Error(ErrorCode::kInvalidArgument,
                        "refused: removing this would break packages the system needs; apt finds no way to do it:\n" +
                            apt_errors(r.output, 6),
                        "Cortex does not remove what the base system depends on");
        }
        throw Error(ErrorCode::kInvalidArgument, "apt cannot plan this:\n" + apt_errors(r.output),
                    "read apt's explanation above; `apt-cache policy <package>` shows the versions apt sees");
    }
    return {parse_simulation(r.output), std::move(r.output)};
}

}  // namespace cortex::interpreter
