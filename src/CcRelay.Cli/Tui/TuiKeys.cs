namespace CcRelay.Cli.Tui;

/// <summary>
/// The dashboard's keys. The terminal adapter names a key (<c>Up</c>, <c>Enter</c>, <c>Esc</c>, <c>Space</c>,
/// <c>PageUp</c>, … or the character typed); this maps the name to an action, so the keys are tested without a terminal.
/// </summary>
internal static class TuiKeys
{
    /// <summary>The help panel's lines: key, what it does.</summary>
    public static readonly IReadOnlyList<(string Keys, string Does)> Help =
    [
        ("↑ ↓  k j", "select a provider (Home/End: first/last)"),
        ("d", "disable the selected provider (operator switch)"),
        ("e", "enable it again (its circuit starts closed)"),
        ("space", "toggle enabled/disabled"),
        ("r", "reload the config file (invalid: its errors)"),
        ("enter", "the selected provider's keys"),
        ("s", "sort: config, health, traffic, errors, latency"),
        ("PgUp PgDn", "scroll the recent requests"),
        ("?", "this help"),
        ("esc", "close a panel"),
        ("q  ctrl+c", "quit (a panel open: close it)"),
    ];

    public static TuiAction Map(string key, bool panelOpen) => key switch
    {
        "Up" or "k" => TuiAction.Up,
        "Down" or "j" => TuiAction.Down,
        "Home" or "g" => TuiAction.Top,
        "End" or "G" => TuiAction.Bottom,
        "PageUp" => TuiAction.ScrollOlder,
        "PageDown" => TuiAction.ScrollNewer,
        "d" => TuiAction.Disable,
        "e" => TuiAction.Enable,
        "Space" => TuiAction.Toggle,
        "r" => TuiAction.Reload,
        "Enter" => panelOpen ? TuiAction.Close : TuiAction.Details,
        "?" or "h" => TuiAction.Help,
        "s" => TuiAction.Sort,
        "Esc" => TuiAction.Close,
        "q" => panelOpen ? TuiAction.Close : TuiAction.Quit,
        "Ctrl+C" => TuiAction.Quit,
        _ => TuiAction.None,
    };
}
