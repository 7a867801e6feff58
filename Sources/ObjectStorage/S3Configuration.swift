import Foundation

/// Where the bucket is and how to talk to it.
public struct S3Configuration: Sendable {
    /// http://host:port or https://host:port, optionally with a path prefix.
    public var endpoint: String
    /// The SigV4 region; radosgw accepts its zonegroup name ("default" on a plain cluster).
    public var region: String
    public var bucket: String
    public var accessKey: String
    public var secretKey: String
    /// Path-style (http://host/bucket/key) rather than virtual-hosted (http://bucket.host/key).
    /// radosgw needs path-style unless its `rgw dns name` and DNS are set up for buckets.
    public var pathStyle: Bool
    /// Longest silence allowed while connecting or waiting for bytes, in seconds. Not a cap
    /// on a whole transfer: a 256 MiB GET may take longer than this and still be healthy.
    public var requestTimeout: TimeInterval
    /// Longest wait for a connection. AsyncHTTPClient keeps retrying a refused connection
    /// until then, so this is how soon a dead endpoint is reported (per attempt).
    public var connectTimeout: TimeInterval
    /// Files at least this large are sent as multipart uploads.
    public var multipartThreshold: Int
    /// Size of each uploaded part (S3's minimum is 5 MiB for all parts but the last).
    public var partSize: Int
    /// Parts in flight at once during a multipart upload; memory use is about
    /// (uploadConcurrency + 1) × partSize.
    public var uploadConcurrency: Int
    /// Attempts for an idempotent request that fails in a retryable way (5xx, SlowDown,
    /// connection errors), including the first.
    public var maxAttempts: Int

    public init(endpoint: String, region: String, bucket: String, accessKey: String, secretKey: String,
                pathStyle: Bool = true, requestTimeout: TimeInterval = 60, connectTimeout: TimeInterval = 10,
                multipartThreshold: Int = 16 << 20, partSize: Int = 16 << 20,
                uploadConcurrency: Int = 2, maxAttempts: Int = 3) {
        self.endpoint = endpoint
        self.region = region
        self.bucket = bucket
        self.accessKey = accessKey
        self.secretKey = secretKey
        self.pathStyle = pathStyle
        self.requestTimeout = requestTimeout
        self.connectTimeout = connectTimeout
        self.multipartThreshold = multipartThreshold
        self.partSize = partSize
        self.uploadConcurrency = uploadConcurrency
        self.maxAttempts = maxAttempts
    }

    /// S3 refuses parts under 5 MiB (but the last one) at CompleteMultipartUpload.
    public static let minimumPartSize = 5 << 20
}
