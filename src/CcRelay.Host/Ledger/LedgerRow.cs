namespace CcRelay.Host.Ledger;

/// <summary>
/// One completed request as the ledger records it. Keys appear only as key ids; nothing here is a secret (the
/// redaction test reads the whole ledger file for the secrets of its config).
/// </summary>
public sealed class LedgerRow
{
    /// <summary>When the request ended (UTC).</summary>
    public required DateTimeOffset EndedAt { get; init; }

    /// <summary>The request id (as in the request line).</summary>
    public required string RequestId { get; init; }

    /// <summary>The client's name (<c>clients[].name</c>); <c>-</c> when the request came through <c>server.auth</c> or an open relay.</summary>
    public string Client { get; init; } = "-";

    /// <summary>The key id of the caller's credential; <c>-</c> when it sent none.</summary>
    public string ClientKeyId { get; init; } = "-";

    /// <summary>The provider that answered; <c>-</c> when none did.</summary>
    public string Provider { get; init; } = "-";

    /// <summary>The key id of the credential sent upstream; <c>-</c> when none.</summary>
    public string KeyId { get; init; } = "-";

    /// <summary>The model the request asked for; <c>-</c> when unknown.</summary>
    public string Model { get; init; } = "-";

    /// <summary>The model the answer named; null when it named none.</summary>
    public string? ResponseModel { get; init; }

    /// <summary>The request's routing stage (<c>routing.stages</c>), null when the request was refused before routing.</summary>
    public string? Stage { get; init; }

    /// <summary>The status the client got.</summary>
    public int Status { get; init; }

    /// <summary>How the request ended (<c>ok</c>, an error type, <c>client_aborted</c>, <c>client_limited</c>, …).</summary>
    public string Result { get; init; } = "ok";

    /// <summary>The answer's <c>input_tokens</c>; null when unknown.</summary>
    public long? InputTokens { get; init; }

    /// <summary>The answer's <c>output_tokens</c>; null when unknown.</summary>
    public long? OutputTokens { get; init; }

    /// <summary>The answer's <c>cache_read_input_tokens</c>; null when unknown.</summary>
    public long? CacheReadTokens { get; init; }

    /// <summary>The answer's <c>cache_creation_input_tokens</c>; null when unknown.</summary>
    public long? CacheWriteTokens { get; init; }

    /// <summary>The request's cost in USD; null when unknown (no usage, or no price).</summary>
    public decimal? CostUsd { get; init; }

    /// <summary>From the request's start to its last byte, ms.</summary>
    public double LatencyMs { get; init; }
}
