import BlobStore
import Foundation
import XCTest

/// The registry against real clients: skopeo (containers/image, as podman and CRI-O use)
/// and oras (the Python SDK, oras-py). A missing client fails the test under CI (which
/// installs both in .ci/run) and skips it elsewhere.
final class RegistryClientTests: XCTestCase {
    /// skopeo copies an OCI layout to the registry and back with every digest unchanged,
    /// lists tags, copies between repositories (a mount: no new blobs) and deletes.
    func testSkopeoRoundTrip() throws {
        let skopeo = try requireTool("skopeo")
        let server = try RegistryProcess(self)
        let dir = try makeTemporaryDirectory(self)
        let image = try registryImage(seed: 30, layerCount: 3, layerBytes: 200_000)
        try image.writeLayout(dir + "/source", tag: "v1")
        let remote = "docker://\(server.base)/skopeo/app"

        @discardableResult
        func run(_ arguments: [String], line: UInt = #line) throws -> CommandResult {
            let r = try runTool(skopeo, ["--insecure-policy"] + arguments, environment: ["HOME": dir])
            XCTAssertEqual(r.status, 0, "skopeo \(arguments.joined(separator: " ")):\n\(r.stderr)\nserver log:\n\(server.log().suffix(3000))", line: line)
            return r
        }

        try run(["copy", "--preserve-digests", "--dest-tls-verify=false", "oci:\(dir)/source:v1", "\(remote):v1"])
        try run(["copy", "--preserve-digests", "--dest-tls-verify=false", "oci:\(dir)/source:v1", "\(remote):v1.1"])
        XCTAssertEqual(try server.request("GET", "/v2/skopeo/app/manifests/v1").body, image.manifest, "the manifest is stored as pushed")

        let raw = try run(["inspect", "--raw", "--tls-verify=false", "\(remote):v1"])
        XCTAssertEqual(Array(raw.stdout.utf8), image.manifest)
        let inspect = try run(["inspect", "--tls-verify=false", "\(remote):v1"])
        let info = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(inspect.stdout.utf8)) as? [String: Any], inspect.stdout)
        XCTAssertEqual(info["Digest"] as? String, image.manifestDigest.description)
        XCTAssertEqual(info["Layers"] as? [String], image.layers.map(\.sha256.description))

        try run(["copy", "--preserve-digests", "--src-tls-verify=false", "\(remote):v1", "oci:\(dir)/back:v1"])
        let index = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir + "/back/index.json"))) as? [String: Any])
        let manifests = try XCTUnwrap(index["manifests"] as? [[String: Any]])
        XCTAssertEqual(manifests.first?["digest"] as? String, image.manifestDigest.description, "the manifest digest survives the round trip")
        for blob in image.blobs {
            XCTAssertEqual(FileManager.default.contents(atPath: dir + "/back/blobs/sha256/" + blob.sha256.hex).map(Array.init), blob,
                           "blob \(blob.sha256) pulled back byte-exact")
        }

        let tags = try run(["list-tags", "--tls-verify=false", remote])
        let listed = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(tags.stdout.utf8)) as? [String: Any], tags.stdout)
        XCTAssertEqual(listed["Tags"] as? [String], ["v1", "v1.1"])

        // Registry to registry, same host: skopeo mounts the blobs instead of uploading them.
        let blobsBefore = try diskUsageBlobs(server.storePath)
        try run(["copy", "--preserve-digests", "--src-tls-verify=false", "--dest-tls-verify=false", "\(remote):v1", "docker://\(server.base)/skopeo/copy:v1"])
        XCTAssertEqual(try server.request("GET", "/v2/skopeo/copy/manifests/v1").body, image.manifest)
        XCTAssertEqual(try diskUsageBlobs(server.storePath), blobsBefore, "a copy within the registry stores no new blob")
        XCTAssertTrue(server.log().contains("mount=sha256"), "skopeo used cross-repository mounts")

        // skopeo delete resolves the tag and deletes the manifest by digest: both tags go.
        try run(["delete", "--tls-verify=false", "\(remote):v1"])
        for reference in ["v1", "v1.1", image.manifestDigest.description] {
            let r = try server.request("GET", "/v2/skopeo/app/manifests/\(reference)")
            XCTAssertEqual(r.status, 404, reference)
            XCTAssertEqual(r.errorCode, "MANIFEST_UNKNOWN")
        }
        XCTAssertEqual(try server.request("GET", "/v2/skopeo/copy/manifests/v1").status, 200, "the other repository keeps its copy")
        let pullGone = try runTool(skopeo, ["--insecure-policy", "copy", "--src-tls-verify=false", "\(remote):v1", "oci:\(dir)/gone:v1"], environment: ["HOME": dir])
        XCTAssertNotEqual(pullGone.status, 0, "a deleted image cannot be pulled")
    }

    /// skopeo against a server with basic auth: `--creds` works, no credentials fail.
    func testSkopeoWithBasicAuth() throws {
        let skopeo = try requireTool("skopeo")
        let htpasswd = try requireTool("htpasswd")
        let dir = try makeTemporaryDirectory(self)
        let entry = try runTool(htpasswd, ["-nbB", "ci", "pa55"])
        XCTAssertEqual(entry.status, 0, entry.stderr)
        try Data(entry.stdout.utf8).write(to: URL(fileURLWithPath: dir + "/htpasswd"))
        let server = try RegistryProcess(self, arguments: ["--htpasswd", dir + "/htpasswd"])
        let image = try registryImage(seed: 31)
        try image.writeLayout(dir + "/source", tag: "v1")
        let target = "docker://\(server.base)/auth/app:v1"
        let anonymous = try runTool(skopeo, ["--insecure-policy", "copy", "--dest-tls-verify=false", "oci:\(dir)/source:v1", target], environment: ["HOME": dir])
        XCTAssertNotEqual(anonymous.status, 0, "an anonymous push is refused")
        let push = try runTool(skopeo, ["--insecure-policy", "copy", "--preserve-digests", "--dest-tls-verify=false", "--dest-creds", "ci:pa55", "oci:\(dir)/source:v1", target],
                               environment: ["HOME": dir])
        XCTAssertEqual(push.status, 0, push.stderr)
        let raw = try runTool(skopeo, ["inspect", "--raw", "--tls-verify=false", "--creds", "ci:pa55", target], environment: ["HOME": dir])
        XCTAssertEqual(Array(raw.stdout.utf8), image.manifest, raw.stderr)
    }

    /// oras-py pushes an artifact (chunked uploads), attaches a referrer to it (a manifest
    /// with `subject`), reads the referrers API and pulls the artifact back byte-exact.
    func testOrasArtifactAndReferrer() throws {
        let python = try requireTool("python3", pythonModule: "oras")
        let server = try RegistryProcess(self)
        let dir = try makeTemporaryDirectory(self)
        var random = TestRandom(seed: 32)
        let files: [String: [UInt8]] = [
            "hello.txt": Array("hello from oras\n".utf8),
            "data.bin": random.bytes(200_000),
            "sig.json": Array(#"{"signature":"c2lnbmVk"}"#.utf8),
            "sigconfig.json": Array("{}".utf8),
        ]
        for (name, bytes) in files { try Data(bytes).write(to: URL(fileURLWithPath: dir + "/" + name)) }
        try Data(Self.orasScript.utf8).write(to: URL(fileURLWithPath: dir + "/oras_client.py"))

        let r = try runTool(python, [dir + "/oras_client.py", server.base, "oras/artifact", dir], directory: dir, timeout: 180)
        XCTAssertEqual(r.status, 0, "oras script failed:\n\(r.stdout)\n\(r.stderr)\nserver log:\n\(server.log().suffix(3000))")
        guard r.status == 0 else { return }
        let report = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any], r.stdout)
        let artifact = try XCTUnwrap(report["artifact"] as? String)
        let referrer = try XCTUnwrap(report["referrer"] as? String)
        XCTAssertEqual(report["subjectHeader"] as? String, artifact, "the referrer push answered with OCI-Subject")

        // The referrers API, as oras-py read it and as plain HTTP sees it (with the filter).
        let listed = try XCTUnwrap(report["referrers"] as? [String: Any])
        let entries = try XCTUnwrap(listed["manifests"] as? [[String: Any]])
        XCTAssertEqual(entries.compactMap { $0["digest"] as? String }, [referrer])
        XCTAssertEqual(entries.first?["artifactType"] as? String, "application/vnd.example.signature.config")
        let filtered = try server.request("GET", "/v2/oras/artifact/referrers/\(artifact)?artifactType=application/vnd.example.signature.config")
        XCTAssertEqual(filtered.header("OCI-Filters-Applied"), "artifactType")
        XCTAssertEqual((filtered.json?["manifests"] as? [[String: Any]])?.compactMap { $0["digest"] as? String }, [referrer])
        let none = try server.request("GET", "/v2/oras/artifact/referrers/\(artifact)?artifactType=application/vnd.other")
        XCTAssertEqual((none.json?["manifests"] as? [Any])?.count, 0)

        // Pulled back byte-exact, under the names pushed.
        let pulled = try XCTUnwrap(report["pulled"] as? [String])
        XCTAssertEqual(Set(pulled.map { URL(fileURLWithPath: $0).lastPathComponent }), ["hello.txt", "data.bin"])
        for name in ["hello.txt", "data.bin"] {
            XCTAssertEqual(FileManager.default.contents(atPath: dir + "/pulled/" + name).map(Array.init), files[name], name)
        }
        let pulledReferrer = try XCTUnwrap(report["pulledReferrer"] as? [String])
        XCTAssertEqual(pulledReferrer.map { URL(fileURLWithPath: $0).lastPathComponent }, ["sig.json"])
        XCTAssertEqual(FileManager.default.contents(atPath: dir + "/pulled-sig/sig.json").map(Array.init), files["sig.json"])
        // The chunked upload really was chunked.
        XCTAssertTrue(server.log().contains("hb.request.method=PATCH"), "oras-py uploaded in chunks")
    }

    func diskUsageBlobs(_ store: String) throws -> Int {
        let r = try runBlobctl(["--store", store, "df", "--json"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let object = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
        return try XCTUnwrap(object["blobs"] as? Int)
    }

    /// Drives oras-py: push an artifact (chunked), push a referrer whose subject is it,
    /// list referrers, pull both. Prints a JSON report on stdout.
    static let orasScript = #"""
    import json
    import logging
    import os
    import sys

    import oras.client
    import oras.oci

    logging.disable(logging.CRITICAL)
    host, repo, workdir = sys.argv[1:4]
    os.chdir(workdir)
    client = oras.client.OrasClient(hostname=host, insecure=True)
    manifest_type = "application/vnd.oci.image.manifest.v1+json"

    pushed = client.push(
        target=f"{host}/{repo}:v1",
        files=["hello.txt:text/plain", "data.bin:application/octet-stream"],
        manifest_annotations={"org.example.kind": "artifact"},
        do_chunked=True,
        chunk_size=65536,
        quiet=True,
    )
    pushed.raise_for_status()
    artifact = pushed.headers["Docker-Content-Digest"]

    head = client.do_request(f"http://{host}/v2/{repo}/manifests/{artifact}", "HEAD", headers={"Accept": manifest_type})
    head.raise_for_status()
    subject = oras.oci.Subject(mediaType=manifest_type, digest=artifact, size=int(head.headers["Content-Length"]))

    attached = client.push(
        target=f"{host}/{repo}:signature",
        files=["sig.json:application/vnd.example.signature+json"],
        manifest_config="sigconfig.json:application/vnd.example.signature.config",
        subject=subject,
        quiet=True,
    )
    attached.raise_for_status()

    referrers = client.do_request(f"http://{host}/v2/{repo}/referrers/{artifact}", "GET")
    referrers.raise_for_status()

    pulled = client.pull(target=f"{host}/{repo}:v1", outdir=os.path.join(workdir, "pulled"))
    pulled_referrer = client.pull(target=f"{host}/{repo}@{attached.headers['Docker-Content-Digest']}",
                                  outdir=os.path.join(workdir, "pulled-sig"))
    print(json.dumps({
        "artifact": artifact,
        "referrer": attached.headers["Docker-Content-Digest"],
        "subjectHeader": attached.headers.get("OCI-Subject"),
        "referrers": referrers.json(),
        "pulled": pulled,
        "pulledReferrer": pulled_referrer,
    }))
    """#
}
