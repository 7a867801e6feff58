import ArgumentParser
import Foundation

/// `blobctl manual`: the man page, generated from the same command definitions as `--help`
/// (so it never drifts from them): `blobctl manual > /usr/local/share/man/man1/blobctl.1`.
struct Manual: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print blobctl's man page (roff), made from every command's --help.",
        discussion: "Install it with: blobctl manual > /usr/local/share/man/man1/blobctl.1")

    func run() throws {
        let date = ISO8601DateFormatter.string(from: Date(), timeZone: .gmt, formatOptions: [.withFullDate])
        var page = """
            .TH BLOBCTL 1 "\(date)" "blobctl \(BlobctlVersion.string)" "User Commands"
            .SH NAME
            blobctl \\- \(Manual.escape(Blobctl.configuration.abstract))
            .SH SYNOPSIS
            .B blobctl
            [\\fB\\-\\-store\\fR \\fIPATH\\fR] \\fICOMMAND\\fR [\\fIOPTIONS\\fR]
            .SH DESCRIPTION
            \(Manual.escape(Blobctl.configuration.discussion))
            .SH COMMANDS

            """
        for (path, command) in Manual.commands(Blobctl.self, path: []) where !path.isEmpty {
            page += ".SS \(path.joined(separator: " "))\n.nf\n"
            page += Manual.escape(Blobctl.helpMessage(for: command, columns: 80)) + "\n.fi\n"
        }
        page += """
            .SH SHELL COMPLETION
            .nf
            blobctl \\-\\-generate\\-completion\\-script bash > /etc/bash_completion.d/blobctl
            blobctl \\-\\-generate\\-completion\\-script zsh  > ~/.zfunc/_blobctl
            blobctl \\-\\-generate\\-completion\\-script fish > ~/.config/fish/completions/blobctl.fish
            .fi

            """
        print(page, terminator: "")
    }

    /// Every command under `root`, depth first, with its path of names.
    static func commands(_ root: ParsableCommand.Type, path: [String]) -> [([String], ParsableCommand.Type)] {
        var result: [([String], ParsableCommand.Type)] = [(path, root)]
        for sub in root.configuration.subcommands {
            let name = sub.configuration.commandName ?? sub._commandName
            result += commands(sub, path: path + [name])
        }
        return result
    }

    /// Text made safe for roff: backslashes doubled, leading dots and quotes guarded.
    static func escape(_ text: String) -> String {
        text.replacingOccurrences(of: "\\", with: "\\e").split(separator: "\n", omittingEmptySubsequences: false).map { line in
            line.hasPrefix(".") || line.hasPrefix("'") ? "\\&" + line : String(line)
        }.joined(separator: "\n")
    }
}
