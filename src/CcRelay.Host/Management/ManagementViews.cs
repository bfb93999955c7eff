using CcRelay.Core;
using CcRelay.Management.V1;
using Percentiles = CcRelay.Management.V1.Percentiles;

namespace CcRelay.Host.Management;

/// <summary>Core's views (<see cref="Core.Management"/>, <see cref="RequestStats"/>) as the API's messages.</summary>
internal static class ManagementViews
{
    /// <summary>The shared-state link as GetStatus answers it: /health's <c>shared_state</c> (Core <see cref="SharedHealth"/>).</summary>
    public static SharedStateLink SharedState(SharedLink link, DateTimeOffset wall) => new()
    {
        Status = SharedHealth.statusName(link),
        Detail = SharedHealth.describe(wall, link),
        SinceUnixMs = link is SharedLink.Degraded degraded ? degraded.Since.ToUnixTimeMilliseconds() : 0,
    };

    public static Provider Provider(ProviderView view)
    {
        var provider = new Provider
        {
            Name = view.Name,
            Type = view.Type,
            BaseUrl = view.BaseUrl,
            EnabledInConfig = view.EnabledInConfig,
            OperatorDisabled = view.OperatorDisabled,
            Circuit = view.Circuit,
            CircuitChangesInMs = view.CircuitChangesIn.IsValueSome ? Math.Max(1, Milliseconds(view.CircuitChangesIn.Value)) : 0,
            Up = view.Up,
            Probe = Probe(view),
            ProbedAgoMs = view.ProbedAgo.IsValueSome ? Milliseconds(view.ProbedAgo.Value) : -1,
            InFlight = view.InFlight,
            LatencyEwmaMs = view.LatencyEwmaMs.IsValueSome ? view.LatencyEwmaMs.Value : -1,
        };
        provider.Keys.AddRange(view.Keys.Select(Key));
        return provider;
    }

    public static CcRelay.Management.V1.ProviderModels Models(CcRelay.Core.ProviderModels view)
    {
        var models = new CcRelay.Management.V1.ProviderModels
        {
            Provider = view.Provider,
            Type = view.Type,
            EnabledInConfig = view.EnabledInConfig,
        };
        models.Models.AddRange(view.Models);
        models.Mapping.AddRange(view.Mapping.Select(m => new ModelMapping { From = m.Item1, To = m.Item2 }));
        return models;
    }

    public static Key Key(KeyView view) => new()
    {
        Provider = view.Provider,
        KeyId = view.KeyId,
        Priority = view.Priority,
        Weight = view.Weight,
        RpmLimit = view.Limits.Rpm,
        InputTpmLimit = view.Limits.Itpm,
        OutputTpmLimit = view.Limits.Otpm,
        RpmRemaining = view.RpmRemaining,
        InputTokensRemaining = view.InputTokensRemaining,
        OutputTokensRemaining = view.OutputTokensRemaining,
        Capacity = view.Capacity,
        CooldownRemainingMs = Milliseconds(view.CooldownRemaining),
        Revoked = view.Revoked,
    };

    public static ProviderStats Stats(ProviderView view, ProviderWindow? window)
    {
        var stats = new ProviderStats
        {
            Name = view.Name,
            Circuit = view.Circuit,
            CircuitChangesInMs = view.CircuitChangesIn.IsValueSome ? Math.Max(1, Milliseconds(view.CircuitChangesIn.Value)) : 0,
            Up = view.Up,
            OperatorDisabled = view.OperatorDisabled,
            Probe = Probe(view),
            InFlight = view.InFlight,
            LatencyMs = new Percentiles(),
            TtfbMs = new Percentiles(),
        };
        stats.Keys.AddRange(view.Keys.Select(Key));
        if (window is not null)
        {
            stats.Requests = window.Requests;
            stats.RequestsPerSecond = window.RequestsPerSecond;
            stats.Errors = window.Errors;
            foreach (var (errorClass, rate) in window.ErrorsPerSecond)
            {
                stats.ErrorsPerSecond[errorClass] = rate;
            }

            stats.LatencyMs = Percentiles(window.Latency);
            stats.TtfbMs = Percentiles(window.Ttfb);
            stats.InputTokens = window.InputTokens;
            stats.OutputTokens = window.OutputTokens;
            stats.CostUsd = (double)window.CostUsd;
            stats.FailedAttempts = window.FailedAttempts;
            stats.Attempts = window.Attempts;
        }

        return stats;
    }

    /// <summary>A plugin's state; its last error scrubbed of every configured secret.</summary>
    public static Plugin Plugin(IReadOnlyList<string> secrets, PluginStatus status) => new()
    {
        Name = status.Name,
        State = status.State,
        Restarts = status.Restarts,
        LastError = Redact.scrub(secrets, status.LastError),
        Calls = status.Calls,
        Failures = status.Failures,
        P50Ms = status.P50Ms,
        Sandboxed = status.Sandboxed,
        Processes = status.Processes,
        Running = status.Pool.Running,
        Busy = status.Pool.Busy,
        Waiting = status.Pool.Waiting,
        Streams = status.Pool.Streams,
        Draining = status.Draining,
    };

    /// <summary>A config problem as the reloader logs it: known secrets scrubbed, credential values hidden.</summary>
    public static CcRelay.Management.V1.ConfigIssue Issue(IReadOnlyList<string> secrets, Core.ConfigIssue issue)
    {
        var text = Redact.issue(secrets, issue);
        var message = Redact.scrub(secrets, issue.Message);
        return new()
        {
            Path = issue.Path,
            Line = issue.Position?.Value.Line ?? 0,
            Column = issue.Position?.Value.Column ?? 0,
            // a credential's quoted value is hidden in the text; the message keeps only what the text keeps
            Message = text.EndsWith(message, StringComparison.Ordinal) ? message : text[(text.IndexOf(": ", StringComparison.Ordinal) + 2)..],
            Text = text,
        };
    }

    private static Percentiles Percentiles(Core.Percentiles p) => new() { P50 = p.P50, P95 = p.P95, P99 = p.P99 };

    private static string Probe(ProviderView view) =>
        view.ProbeSucceeded.IsValueNone ? "unknown" : view.ProbeSucceeded.Value ? "ok" : "failed";

    private static long Milliseconds(TimeSpan value) => (long)Math.Ceiling(value.TotalMilliseconds);

    public static ClientKeyInfo Client(ClientKeyView view)
    {
        var info = new ClientKeyInfo
        {
            Name = view.Name,
            Source = view.Source,
            KeyId = view.KeyId,
            State = view.State,
            ExpiresUnixMs = view.ExpiresAt?.Value.ToUnixTimeMilliseconds() ?? 0,
            Like = view.Like?.Value ?? "",
            Changed = view.Changed,
        };
        info.Grace.AddRange(view.Grace.Select(g => new GraceKey { KeyId = g.Item1, UntilUnixMs = g.Item2.ToUnixTimeMilliseconds() }));
        return info;
    }
}
