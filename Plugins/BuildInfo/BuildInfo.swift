import Foundation
import PackagePlugin

/// Writes `BuildInfo.swift` into the build folder before each build: the commit the
/// sources were built from (`git describe`, "+dirty" when they differ from it), or
/// "unknown" outside a git checkout. `blobctl --version --json` reports it.
@main
struct BuildInfo: BuildToolPlugin {
    func createBuildCommands(context: PluginContext, target: Target) throws -> [Command] {
        let output = context.pluginWorkDirectoryURL.appending(path: "generated")
        let file = output.appending(path: "BuildInfo.swift").path
        let package = context.package.directoryURL.path
        // A prebuild command runs before every build, so the commit is never stale.
        let script = """
            mkdir -p '\(output.path)'
            commit=$(git -C '\(package)' describe --always --dirty=+dirty --abbrev=12 2>/dev/null || echo unknown)
            printf 'enum BuildInfo {\\n    static let commit = "%s"\\n}\\n' "$commit" > '\(file).new'
            cmp -s '\(file).new' '\(file)' && rm '\(file).new' || mv '\(file).new' '\(file)'
            """
        return [.prebuildCommand(displayName: "Recording the commit blobctl is built from",
                                 executable: URL(fileURLWithPath: "/bin/sh"), arguments: ["-c", script],
                                 outputFilesDirectory: output)]
    }
}
