import ArgumentParser
import BlobStore
import CMalloc
import Foundation

/// Runs the command line and turns every outcome into one of blobctl's exit codes.
@main
enum Entry {
    static func main() async {
        blobstore_tune_malloc()
        let arguments = Array(CommandLine.arguments.dropFirst())
        if arguments.contains("--version") && arguments.contains("--json") {
            BlobctlVersion.printJSON()
            exit(ExitStatus.ok.rawValue)
        }
        do {
            var command = try Blobctl.parseAsRoot(GlobalArguments.hoist(arguments))
            if var asyncCommand = command as? AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
            exit(ExitStatus.ok.rawValue)
        } catch let error as BlobStoreError {
            Terminal.error(error.message)
            exit(ExitStatus(error).rawValue)
        } catch let error as UsageError {
            Terminal.error(error.message)
            exit(ExitStatus.usage.rawValue)
        } catch let error as ExitCode {
            exit(error.rawValue)
        } catch {
            let code = Blobctl.exitCode(for: error)
            let message = Blobctl.fullMessage(for: error)
            if code == .success {
                print(message)
                exit(ExitStatus.ok.rawValue)
            }
            FileHandle.standardError.write(Data((message + "\n").utf8))
            // Argument parsing failures are usage errors; anything else a plain failure.
            exit(code == .validationFailure ? ExitStatus.usage.rawValue : ExitStatus.failure.rawValue)
        }
    }
}

/// blobctl's exit codes, documented in the README.
enum ExitStatus: Int32 {
    case ok = 0
    case failure = 1
    case usage = 2
    case notFound = 3
    /// Content does not match its digest, or stored data is damaged.
    case integrity = 4
    /// The cluster's index database or object storage is unreachable: retry later
    /// (sysexits' EX_TEMPFAIL).
    case unavailable = 75

    init(_ error: BlobStoreError) {
        switch error.code {
        case .notFound: self = .notFound
        case .digestMismatch, .corrupt: self = .integrity
        case .invalidArgument: self = .usage
        case .unavailable: self = .unavailable
        default: self = .failure
        }
    }
}

/// A mistake in how blobctl was called, found after parsing (a malformed digest, say).
struct UsageError: Error {
    var message: String
    init(_ message: String) { self.message = message }
}

/// `--store PATH` and `--verbose` may come before the subcommand (`blobctl --store X put F`);
/// every subcommand declares them, so they are moved behind the subcommand's name.
enum GlobalArguments {
    static func hoist(_ args: [String]) -> [String] {
        var globals: [String] = []
        var rest: [String] = []
        var i = 0
        var seenCommand = false
        while i < args.count {
            let a = args[i]
            if !seenCommand && a == "--store" && i + 1 < args.count {
                globals += [a, args[i + 1]]
                i += 2
                continue
            }
            if !seenCommand && (a.hasPrefix("--store=") || a == "--verbose") {
                globals.append(a)
                i += 1
                continue
            }
            if !a.hasPrefix("-") { seenCommand = true }
            rest.append(a)
            i += 1
        }
        if globals.isEmpty { return rest }
        if let dashes = rest.firstIndex(of: "--") {
            rest.insert(contentsOf: globals, at: dashes)
            return rest
        }
        return rest + globals
    }
}
