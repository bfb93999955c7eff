using CcRelay.Management.V1;

namespace CcRelay.Cli.Tui;

/// <summary>
/// Draws a <see cref="DashboardState"/> as exactly <c>height</c> lines of exactly <c>width</c> cells, without a
/// terminal: what rows, in which order, with which symbols, tones and number formats. The terminal adapter only
/// paints the lines.
/// <code>
///   title            cc-relay │ address │ ● live │ gen │ strategy │ uptime │ req/s
///   (banner)         only while not connected
///   provider table   header + one row per provider (scrolls around the selection when too many)
///   key capacity     header + one bar per provider
///   recent requests  header + newest first (PgUp/PgDn scroll)
///   footer           the last action's notice, else the keys
/// </code>
/// A panel (help, keys, reload) replaces everything between the title and the footer.
/// </summary>
internal static class DashboardRenderer
{
    /// <summary>Requests the layout keeps visible before it shortens the key section and then the table.</summary>
    private const int MinRequestRows = 4;

    private const int NameMax = 24;

    /// <summary>The table's columns, most important first: a narrow terminal drops them from the end of this list.</summary>
    private static readonly Column[] Columns =
    [
        new("PROVIDER", 10, Align.Left, (p, _) => new Span(p.Name, Tone.Normal)),
        new("HEALTH", 6, Align.Left, (p, failedOver) => ProviderHealth.Of(p, failedOver) is var h ? new Span(h.Label, h.Tone) : default),
        new("CIRCUIT", 8, Align.Left, (p, _) => new Span(ProviderHealth.Circuit(p), CircuitTone(p.Circuit))),
        new("ERR%", 5, Align.Right, (p, _) => new Span(TuiFormat.Percent(ProviderHealth.ErrorRatio(p)), ProviderHealth.ErrorRatio(p) >= ProviderHealth.DegradedErrorRatio ? Tone.Bad : Tone.Normal)),
        new("REQ/S", 5, Align.Right, (p, _) => new Span(TuiFormat.Rate(p.RequestsPerSecond), Tone.Normal)),
        new("P99", 6, Align.Right, (p, _) => new Span(p.Requests == 0 ? "-" : TuiFormat.Millis(p.LatencyMs?.P99 ?? -1), Tone.Normal)),
        new("P50", 6, Align.Right, (p, _) => new Span(p.Requests == 0 ? "-" : TuiFormat.Millis(p.LatencyMs?.P50 ?? -1), Tone.Normal)),
        new("ON", 3, Align.Left, (p, _) => new Span(ProviderHealth.Enabled(p), ProviderHealth.Enabled(p) == "on" ? Tone.Normal : Tone.Warn)),
        new("INFL", 4, Align.Right, (p, _) => new Span(TuiFormat.Count(p.InFlight), Tone.Normal)),
        new("TOKENS", 6, Align.Right, (p, _) => new Span(TuiFormat.Count(p.InputTokens + p.OutputTokens), Tone.Normal)),
        new("COST", 7, Align.Right, (p, _) => new Span(TuiFormat.Cost(p.CostUsd), Tone.Normal)),
    ];

    /// <summary>The order the kept columns are printed in (left to right).</summary>
    private static readonly string[] PrintOrder = ["PROVIDER", "HEALTH", "ON", "CIRCUIT", "REQ/S", "P50", "P99", "ERR%", "INFL", "TOKENS", "COST"];

    internal enum Align
    {
        Left,
        Right,
    }

    public static IReadOnlyList<Line> Render(DashboardState state, int width, int height, DateTimeOffset now, TimeZoneInfo zone)
    {
        width = Math.Max(1, width);
        height = Math.Max(1, height);
        var body = new List<Line>();
        var bodyHeight = Math.Max(0, height - 2);
        if (state.Overlay is { } overlay)
        {
            body.AddRange(Panel(state, overlay, width, bodyHeight));
        }
        else
        {
            body.AddRange(Body(state, width, bodyHeight, now, zone));
        }

        var lines = new List<Line> { Title(state, width, now) };
        lines.AddRange(body.Take(bodyHeight));
        while (lines.Count < height - 1)
        {
            lines.Add(TuiText.Clip([], width));
        }

        if (height > 1)
        {
            lines.Add(Footer(state, width, now));
        }

        return [.. lines.Take(height)];
    }

    // ---- title and footer ------------------------------------------------------------------------------

    private static Line Title(DashboardState state, int width, DateTimeOffset now)
    {
        var spans = new List<Span> { new(" cc-relay ", Tone.Title), new(" " + state.Target + " ", Tone.Normal) };
        spans.Add(state.Connection.Phase switch
        {
            Phase.Connected => new Span("● live", Tone.Good),
            Phase.Connecting => new Span("◌ connecting…", Tone.Warn),
            _ => new Span($"✖ disconnected — retrying in {Seconds(state.Connection.RetryAt - now)}", Tone.Bad),
        });
        if (state.Stats is { } stats)
        {
            var rate = stats.Providers.Sum(p => p.RequestsPerSecond);
            spans.Add(new Span($" │ gen {stats.ConfigGeneration} │ {stats.RoutingStrategy} │ up {TuiFormat.Duration(TimeSpan.FromMilliseconds(stats.UptimeMs))} │ {TuiFormat.Rate(rate)} req/s", Tone.Normal));
        }

        return TuiText.Clip(spans, width);
    }

    private static Line Footer(DashboardState state, int width, DateTimeOffset now)
    {
        if (state.Notice is { } notice && now - notice.At < DashboardState.NoticeFor)
        {
            return TuiText.Clip([new Span(" " + notice.Text, notice.Tone)], width);
        }

        var hints = state.Overlay is null
            ? "↑↓ select  d disable  e enable  r reload  ⏎ keys  s sort  ? help  q quit"
            : "esc close  q close  ? help";
        var sort = state.Overlay is null && state.Sort != SortOrder.Config ? $"  [sort: {state.Sort.ToString().ToLowerInvariant()}]" : "";
        return TuiText.Clip([new Span(" " + hints, Tone.Dim), new Span(sort, Tone.Accent)], width);
    }

    private static string Seconds(TimeSpan span) => $"{Math.Max(0, (int)Math.Ceiling(span.TotalSeconds))}s";

    // ---- the body: table, keys, requests -----------------------------------------------------------------

    private static IEnumerable<Line> Body(DashboardState state, int width, int height, DateTimeOffset now, TimeZoneInfo zone)
    {
        var lines = new List<Line>();
        if (state.Connection.Phase == Phase.Disconnected)
        {
            var reason = state.Connection.Reason.Length > 0 ? ": " + state.Connection.Reason : "";
            lines.Add(TuiText.Clip([new Span($"✖ disconnected — retrying… (try {state.Connection.Attempt}, next in {Seconds(state.Connection.RetryAt - now)}){reason}", Tone.Bad)], width));
            if (state.Stats is not null)
            {
                lines.Add(TuiText.Clip([new Span("  below: the last statistics received, not live", Tone.Dim)], width));
            }
        }
        else if (state.Stats is null)
        {
            lines.Add(TuiText.Clip([new Span($"connecting to {state.Target}…", Tone.Warn)], width));
        }

        var providers = state.Providers;
        var fixedRows = lines.Count + 3; // table header, keys header, requests header
        var free = Math.Max(0, height - fixedRows);
        var tableRows = Math.Min(providers.Count, Math.Max(providers.Count == 0 ? 0 : 1, free - MinRequestRows - 1));
        var keyRows = Math.Min(providers.Count, Math.Max(0, free - tableRows - MinRequestRows));
        var requestRows = Math.Max(0, free - tableRows - keyRows);

        var selectedIndex = Math.Max(0, providers.ToList().FindIndex(p => p.Name == state.SelectedProvider?.Name));
        var first = tableRows >= providers.Count ? 0 : Math.Clamp(selectedIndex - (tableRows / 2), 0, providers.Count - tableRows);
        var shown = providers.Skip(first).Take(tableRows).ToList();

        var layout = ColumnLayout(width);
        var failovers = state.FailoversFrom();
        lines.Add(TableHeader(layout, width));
        foreach (var provider in shown)
        {
            lines.Add(Row(provider, failovers.GetValueOrDefault(provider.Name), layout, provider.Name == state.SelectedProvider?.Name, width));
        }

        lines.Add(TuiText.Clip([new Span("KEYS", Tone.Header), new Span("  capacity left in each provider's pool (⏎: per key)", Tone.Dim)], width, Tone.Normal));
        var keyed = shown.Count >= keyRows ? shown : providers.ToList();
        foreach (var provider in keyed.Take(keyRows))
        {
            lines.Add(KeyBar(provider, layout.NameWidth, width));
        }

        lines.Add(RequestsHeader(state, width));
        foreach (var request in state.Recent.Skip(state.Scroll).Take(requestRows))
        {
            lines.Add(RequestRow(request, width, zone));
        }

        return lines;
    }

    /// <summary>The table's columns at <paramref name="width"/> and the width of the provider name.</summary>
    internal static (IReadOnlyList<Column> Columns, int NameWidth) ColumnLayout(int width)
    {
        var kept = Columns.ToList();
        static int Needed(List<Column> columns) => 2 + columns.Sum(c => c.Width) + columns.Count - 1;
        while (kept.Count > 1 && Needed(kept) > width)
        {
            kept.RemoveAt(kept.Count - 1);
        }

        var nameWidth = Math.Clamp(kept[0].Width + (width - Needed(kept)), 1, NameMax);
        var ordered = PrintOrder.Select(name => kept.FirstOrDefault(c => c.Header == name)).OfType<Column>().ToList();
        return (ordered, nameWidth);
    }

    private static Line TableHeader((IReadOnlyList<Column> Columns, int NameWidth) layout, int width)
    {
        var cells = layout.Columns.Select(c => Cell(c.Header, c.Header == "PROVIDER" ? layout.NameWidth : c.Width, c.Align));
        return TuiText.Clip([new Span("  " + string.Join(' ', cells), Tone.Header)], width);
    }

    private static Line Row(ProviderStats provider, int failedOver, (IReadOnlyList<Column> Columns, int NameWidth) layout, bool selected, int width)
    {
        var spans = new List<Span> { new(selected ? "› " : "  ", Tone.Accent) };
        foreach (var column in layout.Columns)
        {
            var cell = column.Cell(provider, failedOver);
            var cellWidth = column.Header == "PROVIDER" ? layout.NameWidth : column.Width;
            if (spans.Count > 1)
            {
                spans.Add(new Span(" ", Tone.Normal));
            }

            var tone = column.Header == "PROVIDER" && selected ? Tone.Selected : cell.Tone;
            spans.Add(new Span(Cell(cell.Text, cellWidth, column.Align), tone));
        }

        return TuiText.Clip(spans, width);
    }

    private static string Cell(string text, int width, Align align) =>
        align == Align.Left ? TuiText.Left(text, width) : TuiText.Right(text, width);

    private static Tone CircuitTone(string circuit) => circuit switch
    {
        "open" => Tone.Bad,
        "half_open" => Tone.Warn,
        "disabled" or "config_disabled" => Tone.Dim,
        _ => Tone.Normal,
    };

    private static Line KeyBar(ProviderStats provider, int nameWidth, int width)
    {
        var spans = new List<Span> { new("  " + TuiText.Left(provider.Name, nameWidth) + " ", Tone.Normal) };
        if (ProviderHealth.Capacity(provider) is not { } capacity)
        {
            spans.Add(new Span("no keys: the client's own credentials pass through", Tone.Dim));
            return TuiText.Clip(spans, width);
        }

        var barWidth = Math.Clamp(width / 4, 6, 30);
        var tone = capacity >= 0.5 ? Tone.Good : capacity >= 0.2 ? Tone.Warn : Tone.Bad;
        spans.Add(new Span("▕", Tone.Dim));
        spans.Add(new Span(TuiFormat.Bar(capacity, barWidth), tone));
        spans.Add(new Span("▏", Tone.Dim));
        spans.Add(new Span(TuiText.Right(TuiFormat.Percent(capacity), 5), tone));
        spans.Add(new Span("  " + KeySummary(provider), Tone.Normal));
        return TuiText.Clip(spans, width);
    }

    /// <summary><c>3 keys · 1 cooling 12s · 1 revoked · 45 rpm left</c>.</summary>
    internal static string KeySummary(ProviderStats provider)
    {
        var keys = provider.Keys;
        var parts = new List<string> { keys.Count == 1 ? "1 key" : $"{keys.Count} keys" };
        var cooling = keys.Where(k => k.CooldownRemainingMs > 0 && !k.Revoked).ToList();
        if (cooling.Count > 0)
        {
            parts.Add($"{cooling.Count} cooling {TuiFormat.Duration(TimeSpan.FromMilliseconds(cooling.Max(k => k.CooldownRemainingMs)))}");
        }

        var revoked = keys.Count(k => k.Revoked);
        if (revoked > 0)
        {
            parts.Add($"{revoked} revoked");
        }

        if (keys.All(k => k.RpmRemaining >= 0))
        {
            parts.Add($"{TuiFormat.Count(keys.Sum(k => k.RpmRemaining))} rpm left");
        }

        return string.Join(" · ", parts);
    }

    // ---- recent requests ---------------------------------------------------------------------------------

    private const int TimeWidth = 8;
    private const int ProviderWidth = 10;
    private const int StatusWidth = 5;
    private const int LatencyWidth = 7;
    private const int TokensWidth = 9;
    private const int NoteMin = 16;

    /// <summary>The model column: what the other columns and the note's minimum leave (17 at 80 columns, claude-sonnet-4-5).</summary>
    private static int ModelWidth(int width) =>
        Math.Clamp(width - (2 + TimeWidth + ProviderWidth + StatusWidth + LatencyWidth + TokensWidth + NoteMin + 6), 8, 40);

    private static Line RequestsHeader(DashboardState state, int width)
    {
        var text = "  " + string.Join(' ',
            TuiText.Left("TIME", TimeWidth), TuiText.Left("MODEL", ModelWidth(width)), TuiText.Left("PROVIDER", ProviderWidth),
            TuiText.Left("STAT", StatusWidth), TuiText.Right("LATENCY", LatencyWidth), TuiText.Right("IN/OUT", TokensWidth), "NOTE");
        var spans = new List<Span> { new(text, Tone.Header) };
        if (state.Scroll > 0)
        {
            spans.Add(new Span($"  ↑{state.Scroll} newer (PgDn)", Tone.Accent));
        }

        if (state.Missed > 0)
        {
            spans.Add(new Span($"  {state.Missed} missed (dashboard too slow)", Tone.Warn));
        }

        return TuiText.Clip(spans, width);
    }

    private static Line RequestRow(CompletedRequest request, int width, TimeZoneInfo zone)
    {
        var ok = request.Status is >= 200 and < 400 && request.ErrorClass.Length == 0;
        var statusTone = ok ? Tone.Good : request.Status is >= 400 and < 500 && request.ErrorClass != "rate_limit" ? Tone.Warn : Tone.Bad;
        var status = (ok ? "✓" : "✗") + (request.Status > 0 ? request.Status.ToString(System.Globalization.CultureInfo.InvariantCulture) : "---");
        var model = request.UpstreamModel.Length > 0 && request.UpstreamModel != request.Model ? $"{request.Model}→{request.UpstreamModel}" : request.Model;
        var tokens = request.InputTokens < 0 && request.OutputTokens < 0 ? "-" : $"{TuiFormat.Count(request.InputTokens)}/{TuiFormat.Count(request.OutputTokens)}";
        var spans = new List<Span>
        {
            new("  " + TuiText.Left(TuiFormat.Clock(request.EndedUnixMs, zone), TimeWidth) + " ", Tone.Dim),
            new(TuiText.Left(model, ModelWidth(width)) + " ", Tone.Normal),
            new(TuiText.Left(request.Provider, ProviderWidth) + " ", Tone.Normal),
            new(TuiText.Left(status, StatusWidth) + " ", statusTone),
            new(TuiText.Right(TuiFormat.Millis(request.LatencyMs), LatencyWidth) + " ", Tone.Normal),
            new(TuiText.Right(tokens, TokensWidth) + " ", Tone.Normal),
            new(Note(request), ok ? Tone.Accent : statusTone),
        };
        return TuiText.Clip(spans, width);
    }

    /// <summary>
    /// What else to know about a request: the providers it failed over from (<c>↪ from zai, ollama</c>), else how
    /// many attempts it took, and how it failed (its error class or result).
    /// </summary>
    internal static string Note(CompletedRequest request)
    {
        var parts = new List<string>();
        if (request.ErrorClass.Length > 0)
        {
            parts.Add(request.Result.Length > 0 && request.Result != "ok" ? request.Result : request.ErrorClass);
        }

        if (request.FailedOver.Count > 0)
        {
            parts.Add("↪ from " + string.Join(", ", request.FailedOver));
        }
        else if (request.Attempts > 1)
        {
            parts.Add($"{request.Attempts} tries");
        }

        if (request.Stream)
        {
            parts.Add("stream");
        }

        return string.Join(" ", parts);
    }

    // ---- panels ------------------------------------------------------------------------------------------

    private static IEnumerable<Line> Panel(DashboardState state, Overlay overlay, int width, int height)
    {
        var (title, content) = overlay switch
        {
            Overlay.Help => ("Help", HelpLines(width - 4)),
            Overlay.Keys keys => ($"Keys of {keys.Provider}", KeyLines(state, keys.Provider, width - 4)),
            Overlay.Reload reload => ("Config reload", ReloadLines(reload.Answer, width - 4)),
            _ => ("", new List<Line>()),
        };
        var inner = Math.Max(0, height - 2);
        var head = TuiText.Fit("┌─ " + title + " ", Math.Max(0, width - 1));
        var lines = new List<Line> { Line.Of(head + new string('─', Math.Max(0, width - 1 - head.Length)) + "┐", Tone.Accent) };
        var shown = content.Count > inner ? [.. content.Take(Math.Max(0, inner - 1)), Line.Of($"… {content.Count - inner + 1} more lines", Tone.Dim)] : content;
        foreach (var line in shown)
        {
            lines.Add(new Line([new Span("│ ", Tone.Accent), .. TuiText.Clip(line.Spans, width - 4).Spans, new Span(" │", Tone.Accent)]));
        }

        while (lines.Count < height - 1)
        {
            lines.Add(new Line([new Span("│ ", Tone.Accent), new Span(new string(' ', Math.Max(0, width - 4)), Tone.Normal), new Span(" │", Tone.Accent)]));
        }

        lines.Add(TuiText.Clip([new Span("└" + new string('─', Math.Max(0, width - 2)) + "┘", Tone.Accent)], width));
        return lines.Select(l => TuiText.Clip(l.Spans, width));
    }

    private static List<Line> HelpLines(int width)
    {
        var lines = TuiKeys.Help.Select(h => new Line([new Span(TuiText.Left(h.Keys, 12), Tone.Accent), new Span(h.Does, Tone.Normal)])).ToList();
        lines.Add(Line.Empty);
        lines.Add(Line.Of("Health: ● ok  ▲ warn (errors ≥ 5 %, requests failed over from it,", Tone.Normal));
        lines.Add(Line.Of("        probe failed, keys spent)", Tone.Normal));
        lines.Add(Line.Of("        ◐ half (one probe decides)  ✖ down (circuit open)  ○ off", Tone.Normal));
        lines.Add(Line.Of("Rates, latency, errors, tokens and cost: over the last 60 s.", Tone.Dim));
        return [.. lines.Select(l => TuiText.Clip(l.Spans, width))];
    }

    private static List<Line> KeyLines(DashboardState state, string providerName, int width)
    {
        var provider = state.Stats?.Providers.FirstOrDefault(p => p.Name == providerName);
        if (provider is null)
        {
            return [Line.Of($"{providerName} is not in the running config any more.", Tone.Warn)];
        }

        var health = ProviderHealth.Of(provider, state.FailoversFrom().GetValueOrDefault(providerName));
        var lines = new List<Line>
        {
            new([new Span(health.Label, health.Tone), new Span($"  circuit {ProviderHealth.Circuit(provider)} · probe {provider.Probe} · {TuiFormat.Count(provider.InFlight)} in flight", Tone.Normal)]),
        };
        if (provider.Keys.Count == 0)
        {
            lines.Add(Line.Of("No keys: the client's own credentials pass through.", Tone.Dim));
            return lines;
        }

        lines.Add(Line.Of(string.Join(' ', TuiText.Left("KEY ID", 9), TuiText.Right("PRI", 3), TuiText.Right("W", 3),
            TuiText.Right("RPM", 9), TuiText.Right("IN TOK/MIN", 11), TuiText.Right("OUT TOK/MIN", 11), TuiText.Left("CAPACITY", 12), "STATE"), Tone.Header));
        foreach (var key in provider.Keys)
        {
            var (condition, tone) = key.Revoked ? ("✖ revoked", Tone.Bad)
                : key.CooldownRemainingMs > 0 ? ($"◐ cool {TuiFormat.Duration(TimeSpan.FromMilliseconds(key.CooldownRemainingMs))}", Tone.Warn)
                : key.Capacity <= 0 ? ("▲ spent", Tone.Warn)
                : ("● ready", Tone.Good);
            var barTone = key.Capacity >= 0.5 ? Tone.Good : key.Capacity >= 0.2 ? Tone.Warn : Tone.Bad;
            lines.Add(new Line(
            [
                new Span(string.Join(' ', TuiText.Left(key.KeyId, 9), TuiText.Right(key.Priority.ToString(System.Globalization.CultureInfo.InvariantCulture), 3),
                    TuiText.Right(key.Weight.ToString(System.Globalization.CultureInfo.InvariantCulture), 3), TuiText.Right(Left(key.RpmRemaining, key.RpmLimit), 9),
                    TuiText.Right(Left(key.InputTokensRemaining, key.InputTpmLimit), 11), TuiText.Right(Left(key.OutputTokensRemaining, key.OutputTpmLimit), 11)) + " ", Tone.Normal),
                new Span(TuiFormat.Bar(key.Capacity, 7), barTone),
                new Span(TuiText.Right(TuiFormat.Percent(key.Capacity), 5) + " ", barTone),
                new Span(condition, tone),
            ]));
        }

        return [.. lines.Select(l => TuiText.Clip(l.Spans, width))];
    }

    /// <summary><c>45/50</c> (left of the per-minute limit), or <c>∞</c> when unlimited.</summary>
    internal static string Left(long remaining, int limit) =>
        remaining < 0 || limit <= 0 ? "∞" : $"{TuiFormat.Count(remaining)}/{TuiFormat.Count(limit)}";

    private static List<Line> ReloadLines(ReloadConfigResponse answer, int width)
    {
        var lines = new List<Line>();
        switch (answer.Outcome)
        {
            case "applied":
                lines.Add(Line.Of($"✓ applied: the relay now runs config generation {answer.ConfigGeneration}", Tone.Good));
                lines.AddRange(answer.Changes.SelectMany(c => TuiText.Wrap("• " + c, width)).Select(t => Line.Of(t)));
                break;
            case "unchanged":
                lines.Add(Line.Of($"● unchanged: the file says what generation {answer.ConfigGeneration} runs", Tone.Normal));
                break;
            case "restart_required":
                lines.Add(Line.Of($"● not applied: what changed needs a restart; generation {answer.ConfigGeneration} stays", Tone.Normal));
                lines.AddRange(answer.Changes.SelectMany(c => TuiText.Wrap("• " + c, width)).Select(t => Line.Of(t)));
                break;
            default:
                lines.Add(Line.Of($"✖ {answer.Outcome}: the running config (generation {answer.ConfigGeneration}) stays", Tone.Bad));
                foreach (var issue in answer.Errors)
                {
                    lines.AddRange(TuiText.Wrap("error: " + (issue.Text.Length > 0 ? issue.Text : issue.Message), width).Select(t => Line.Of(t, Tone.Bad)));
                }

                break;
        }

        foreach (var issue in answer.Warnings)
        {
            lines.AddRange(TuiText.Wrap("warning: " + (issue.Text.Length > 0 ? issue.Text : issue.Message), width).Select(t => Line.Of(t, Tone.Warn)));
        }

        return lines;
    }

    /// <summary>A table column: its header, its narrowest width, how it aligns, and its cell for a provider (and the requests that failed over from it).</summary>
    internal sealed record Column(string Header, int Width, Align Align, Func<ProviderStats, int, Span> Cell);
}

