import BlobStore
import Foundation
import XCTest

/// Podman as the registry's client, and the two engines sharing images through it.
final class PodmanRegistryTests: XCTestCase {
    /// podman pushes an image, forgets it, pulls it back and runs it; Docker pulls the
    /// same image from the registry and runs it too.
    func testPodmanPushPullRunAndDockerPullsIt() throws {
        let podman = try PodmanEngine(self)
        let server = try RegistryProcess(self)
        try podman.importBusybox(as: "localhost/bb:1")
        let reference = "127.0.0.1:\(server.port)/engines/bb:1"
        try podman.run(["tag", "localhost/bb:1", reference])
        try podman.run(["push", "--tls-verify=false", reference])
        XCTAssertEqual(try server.request("GET", "/v2/engines/bb/tags/list").json?["tags"] as? [String], ["1"])
        try podman.run(["rmi", reference, "localhost/bb:1"])
        try podman.run(["pull", "--tls-verify=false", reference])
        XCTAssertEqual(try podman.run(["run", "--rm", reference, "echo", "pulled by podman"]), "pulled by podman\n")

        let docker = try DockerEngine(self)
        try docker.run(["pull", reference])
        XCTAssertEqual(try docker.run(["run", "--rm", "--network", "none", reference, "echo", "pulled by docker"]), "pulled by docker\n")
    }
}
