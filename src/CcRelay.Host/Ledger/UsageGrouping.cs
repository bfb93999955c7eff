namespace CcRelay.Host.Ledger;

/// <summary>What a usage report groups by.</summary>
public enum UsageGrouping
{
    /// <summary>By client name (<c>-</c>: through <c>server.auth</c>).</summary>
    Client,

    /// <summary>By the provider that answered.</summary>
    Provider,

    /// <summary>By the requested model.</summary>
    Model,

    /// <summary>By upstream key: <c>provider/key_id</c>.</summary>
    Key,

    /// <summary>By calendar day in the ledger's time zone.</summary>
    Day,
}
