namespace CcRelay.Host.Logging;

/// <summary>The facts of one relayed request, collected on the hot path and logged once at its end.</summary>
internal sealed class RequestRecord
{
    public required string RequestId { get; init; }

    public required string Method { get; init; }

    public required string Path { get; init; }

    public string Provider { get; set; } = "-";

    public string Model { get; set; } = "-";

    public string UpstreamModel { get; set; } = "-";

    public int Status { get; set; }

    public bool Stream { get; set; }

    public long BytesIn { get; set; }

    public long BytesOut { get; set; }

    /// <summary>Elapsed ms from the request's start to the upstream's response headers; -1 when none came.</summary>
    public double TtfbMs { get; set; } = -1;

    /// <summary>How the request ended: <c>ok</c>, an error type, <c>client_aborted</c>, …</summary>
    public string Result { get; set; } = "ok";
}
