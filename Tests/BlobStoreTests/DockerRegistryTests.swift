import BlobStore
import Foundation
import XCTest

/// A real Docker Engine as the registry's client: build, push, pull, run, delete, collect.
final class DockerRegistryTests: XCTestCase {
    private func storedBytes(_ store: String) throws -> Int {
        let df = try runBlobctl(["--store", store, "df", "--json"])
        XCTAssertEqual(df.status, 0, df.stderr)
        let json = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(df.stdout.utf8)) as? [String: Any])
        return try XCTUnwrap(json["storedBytes"] as? Int)
    }

    /// Two images from one base (classic builder: `FROM base`, a package layer the second
    /// build takes from cache, a small `COPY` that differs) pushed by `docker push`: the
    /// second costs the store only its own small layer. Then `docker rmi`, `docker pull`,
    /// `docker run` of what was pulled; one tag deleted through the API and `blobctl gc`
    /// frees its layer; the other image still pulls and runs.
    func testDockerBuildPushPullRunDeleteCollect() throws {
        let engine = try DockerEngine(self)
        // Holds on uploaded blobs end after 5 s, and GC runs only when the test says. (Not
        // 1 s: leases count whole seconds, so a 1 s lease can run out between a push's
        // POST and its PATCH, and docker push fails with "blob upload unknown".)
        let server = try RegistryProcess(self, config: #"{"gc":{"intervalSeconds":0,"uploadLeaseSeconds":5}}"#)
        try engine.importBusybox(as: "base:1")
        let context = try makeTemporaryDirectory(self)
        try Data("""
            FROM base:1
            RUN mkdir -p /opt/pkg && head -c 3000000 /dev/urandom > /opt/pkg/blob
            COPY app.txt /app.txt
            """.utf8).write(to: URL(fileURLWithPath: context + "/Dockerfile"))
        let repo = "127.0.0.1:\(server.port)/demo/app"
        for version in ["a", "b"] {
            try Data("version \(version)\n".utf8).write(to: URL(fileURLWithPath: context + "/app.txt"))
            try engine.run(["build", "-q", "-t", "\(repo):\(version)", "."], directory: context)
        }
        let layersA = try engine.run(["image", "inspect", "-f", "{{json .RootFS.Layers}}", "\(repo):a"])
        let layersB = try engine.run(["image", "inspect", "-f", "{{json .RootFS.Layers}}", "\(repo):b"])
        let a = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(layersA.utf8)) as? [String])
        let b = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(layersB.utf8)) as? [String])
        XCTAssertEqual(a.count, 3)
        XCTAssertEqual(Array(a.prefix(2)), Array(b.prefix(2)), "base and package layers are shared")
        XCTAssertNotEqual(a[2], b[2])
        let packageSum = try engine.run(["run", "--rm", "--network", "none", "\(repo):a", "sha256sum", "/opt/pkg/blob"])

        try engine.run(["push", "\(repo):a"])
        let afterA = try storedBytes(server.storePath)
        try engine.run(["push", "\(repo):b"])
        let pushedB = Date()
        let afterB = try storedBytes(server.storePath)
        XCTAssertGreaterThan(afterA, 3_000_000, "the random package layer is stored")
        XCTAssertLessThan(afterB - afterA, 200_000, "image b costs only its own layer, config and manifest")

        // What the registry serves: b's manifest shares a's first two layers.
        let accept = ["Accept": "application/vnd.docker.distribution.manifest.v2+json"]
        let manifestA = try server.request("GET", "/v2/demo/app/manifests/a", headers: accept)
        let manifestB = try server.request("GET", "/v2/demo/app/manifests/b", headers: accept)
        XCTAssertEqual(manifestA.status, 200, manifestA.text)
        func layerDigests(_ r: HTTPResult) -> [String] {
            ((r.json?["layers"] as? [[String: Any]]) ?? []).compactMap { $0["digest"] as? String }
        }
        XCTAssertEqual(layerDigests(manifestA).count, 3)
        XCTAssertEqual(Array(layerDigests(manifestA).prefix(2)), Array(layerDigests(manifestB).prefix(2)))

        // Pull what was pushed into an engine that no longer has it, and run it.
        try engine.run(["rmi", "\(repo):a", "\(repo):b"])
        try engine.run(["pull", "\(repo):a"])
        XCTAssertEqual(try engine.run(["run", "--rm", "--network", "none", "\(repo):a", "cat", "/app.txt"]), "version a\n")
        XCTAssertEqual(try engine.run(["run", "--rm", "--network", "none", "\(repo):a", "sha256sum", "/opt/pkg/blob"]), packageSum)

        // Delete b through the API (by digest, as the spec says), collect: b's own layer goes.
        let digestB = try XCTUnwrap(manifestB.header("Docker-Content-Digest"))
        XCTAssertEqual(try server.request("DELETE", "/v2/demo/app/manifests/\(digestB)").status, 202)
        // The upload holds (5 s after b's push) run out.
        let left = 6 - Date().timeIntervalSince(pushedB)
        if left > 0 { usleep(UInt32(left * 1_000_000)) }
        let gc = try runBlobctl(["--store", server.storePath, "gc", "--json"])
        XCTAssertEqual(gc.status, 0, gc.stderr)
        let afterGC = try storedBytes(server.storePath)
        XCTAssertLessThan(afterGC, afterB, "b's layer, config and manifest were freed")
        XCTAssertGreaterThan(afterGC, 3_000_000, "a's layers are kept")
        XCTAssertEqual(try server.request("GET", "/v2/demo/app/manifests/b", headers: accept).status, 404)

        try engine.run(["rmi", "\(repo):a"])
        try engine.run(["pull", "\(repo):a"])
        XCTAssertEqual(try engine.run(["run", "--rm", "--network", "none", "\(repo):a", "cat", "/app.txt"]), "version a\n")
        let fsck = try runBlobctl(["--store", server.storePath, "fsck"])
        XCTAssertEqual(fsck.status, 0, fsck.stdout + fsck.stderr)
    }
}
