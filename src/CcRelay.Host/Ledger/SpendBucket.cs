namespace CcRelay.Host.Ledger;

/// <summary>The cost a client spent on a model in the 15 minutes from <see cref="Start"/>.</summary>
public sealed record SpendBucket(string Client, string Model, DateTimeOffset Start, decimal CostUsd);
