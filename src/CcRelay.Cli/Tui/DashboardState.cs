using System.Collections.Immutable;
using CcRelay.Management.V1;

namespace CcRelay.Cli.Tui;

/// <summary>Where the connection to the relay stands.</summary>
internal enum Phase
{
    Connecting,
    Connected,
    Disconnected,
}

/// <summary>The connection: its phase, why it is down and when the next try is (both only while disconnected).</summary>
internal sealed record Connection(Phase Phase, string Reason = "", DateTimeOffset RetryAt = default, int Attempt = 0)
{
    public static readonly Connection Connecting = new(Phase.Connecting);
}

/// <summary>A panel drawn over the dashboard until closed.</summary>
internal abstract record Overlay
{
    public sealed record Help : Overlay;

    /// <summary>The keys of one provider, refreshed with every statistics message.</summary>
    public sealed record Keys(string Provider) : Overlay;

    /// <summary>A reload's answer: applied (what changed), unchanged, or rejected (the located errors).</summary>
    public sealed record Reload(ReloadConfigResponse Answer) : Overlay;
}

/// <summary>A short message in the footer (an action's result), shown for <see cref="DashboardState.NoticeFor"/>.</summary>
internal sealed record Notice(string Text, Tone Tone, DateTimeOffset At);

/// <summary>What the operator asked for by a key press (<see cref="TuiKeys"/>).</summary>
internal enum TuiAction
{
    None,
    Up,
    Down,
    Top,
    Bottom,
    ScrollOlder,
    ScrollNewer,
    Enable,
    Disable,
    Toggle,
    Reload,
    Details,
    Help,
    Sort,
    Close,
    Quit,
}

/// <summary>
/// Everything the dashboard shows, as an immutable value: the latest statistics, the recent requests (newest
/// first), the selection, the open panel. Changed only by the pure transitions below; drawn by
/// <see cref="DashboardRenderer"/>.
/// </summary>
internal sealed record DashboardState
{
    /// <summary>Completed requests kept for the scrolling pane.</summary>
    public const int MaxRecent = 500;

    /// <summary>How long a notice stays in the footer.</summary>
    public static readonly TimeSpan NoticeFor = TimeSpan.FromSeconds(6);

    /// <summary>The relay's management address, as shown in the title.</summary>
    public required string Target { get; init; }

    public Connection Connection { get; init; } = Connection.Connecting;

    /// <summary>The latest <c>WatchStats</c> message; null until the first.</summary>
    public Stats? Stats { get; init; }

    /// <summary>Completed requests, newest first.</summary>
    public ImmutableList<CompletedRequest> Recent { get; init; } = [];

    /// <summary>Requests scrolled past (0: the newest is at the top).</summary>
    public int Scroll { get; init; }

    /// <summary>Completed requests the relay could not send to this dashboard because it read too slowly (the sum of
    /// the stream's <c>dropped_before</c>): the recent list is not every request when this is above 0.</summary>
    public long Missed { get; init; }

    /// <summary>The selected provider's name (kept by name so a re-sort or a reload does not move it).</summary>
    public string? Selected { get; init; }

    public SortOrder Sort { get; init; } = SortOrder.Config;

    public Overlay? Overlay { get; init; }

    public Notice? Notice { get; init; }

    /// <summary>The providers in the table's order.</summary>
    public IReadOnlyList<ProviderStats> Providers => Stats is null ? [] : ProviderHealth.Sort(Stats.Providers, Sort);

    /// <summary>The selected provider: the one named by <see cref="Selected"/>, else the first.</summary>
    public ProviderStats? SelectedProvider =>
        Providers.FirstOrDefault(p => p.Name == Selected) ?? Providers.FirstOrDefault();

    /// <summary>
    /// Per provider, the recent requests (of those kept) that failed on it and went on to another, within the
    /// statistics window (<see cref="ProviderHealth.Of"/>).
    /// </summary>
    public IReadOnlyDictionary<string, int> FailoversFrom()
    {
        if (Stats is null)
        {
            return new Dictionary<string, int>();
        }

        var since = Stats.UnixMs - (Stats.WindowMs > 0 ? Stats.WindowMs : 60_000);
        return Recent
            .TakeWhile(r => r.EndedUnixMs >= since)
            .SelectMany(r => r.FailedOver)
            .GroupBy(name => name, StringComparer.Ordinal)
            .ToDictionary(g => g.Key, g => g.Count(), StringComparer.Ordinal);
    }

    /// <summary>A statistics message arrived: the connection is up.</summary>
    public DashboardState WithStats(Stats stats) =>
        this with { Stats = stats, Connection = new Connection(Phase.Connected), Selected = Selected ?? stats.Providers.FirstOrDefault()?.Name };

    /// <summary>A request completed: it goes on top; a scrolled pane stays on the requests it shows.</summary>
    public DashboardState WithRequest(CompletedRequest request)
    {
        var recent = Recent.Insert(0, request);
        if (recent.Count > MaxRecent)
        {
            recent = recent.RemoveAt(recent.Count - 1);
        }

        return this with
        {
            Recent = recent,
            Scroll = Scroll > 0 ? Math.Min(Scroll + 1, recent.Count - 1) : 0,
            Missed = Missed + (long)request.DroppedBefore,
        };
    }

    /// <summary>The answer of <c>SetProviderEnabled</c>: the table shows it at once, before the next statistics message.</summary>
    public DashboardState WithProvider(Provider provider)
    {
        if (Stats is null)
        {
            return this;
        }

        var stats = Stats.Clone();
        foreach (var row in stats.Providers.Where(p => p.Name == provider.Name))
        {
            row.OperatorDisabled = provider.OperatorDisabled;
            row.Circuit = provider.Circuit;
            row.CircuitChangesInMs = provider.CircuitChangesInMs;
            row.Up = provider.Up;
        }

        return this with { Stats = stats };
    }

    public DashboardState Disconnected(string reason, DateTimeOffset retryAt, int attempt) =>
        this with { Connection = new Connection(Phase.Disconnected, reason, retryAt, attempt) };

    public DashboardState Say(string text, Tone tone, DateTimeOffset now) => this with { Notice = new Notice(text, tone, now) };

    /// <summary>
    /// The state after a key's action that changes only what is shown (selection, scrolling, panels, order).
    /// Actions that call the relay (enable, disable, reload) and quitting leave it unchanged: the caller does them.
    /// </summary>
    public DashboardState Apply(TuiAction action)
    {
        var providers = Providers;
        var index = providers.Count == 0 ? -1 : Math.Max(0, providers.ToList().FindIndex(p => p.Name == SelectedProvider?.Name));
        string? At(int i) => providers.Count == 0 ? Selected : providers[Math.Clamp(i, 0, providers.Count - 1)].Name;
        return action switch
        {
            TuiAction.Close => this with { Overlay = null },
            TuiAction.Help => this with { Overlay = Overlay is Overlay.Help ? null : new Overlay.Help() },
            TuiAction.Details when SelectedProvider is { } selected => this with { Overlay = new Overlay.Keys(selected.Name) },
            // while a panel is open, the keys move nothing beneath it
            _ when Overlay is not null => this,
            TuiAction.Up => this with { Selected = At(index - 1) },
            TuiAction.Down => this with { Selected = At(index + 1) },
            TuiAction.Top => this with { Selected = At(0) },
            TuiAction.Bottom => this with { Selected = At(providers.Count - 1) },
            TuiAction.ScrollOlder => this with { Scroll = Math.Clamp(Scroll + 10, 0, Math.Max(0, Recent.Count - 1)) },
            TuiAction.ScrollNewer => this with { Scroll = Math.Max(0, Scroll - 10) },
            TuiAction.Sort => this with { Sort = (SortOrder)(((int)Sort + 1) % Enum.GetValues<SortOrder>().Length) },
            _ => this,
        };
    }
}
