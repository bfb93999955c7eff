using System.Globalization;
using System.Text;

namespace CcRelay.Cli.Tui;

/// <summary>
/// What a piece of the dashboard means, not how it looks: the terminal adapter (<see cref="DashboardView"/>) maps
/// each tone to a colour. Every tone that carries a state also comes with a symbol or a word in the text, so the
/// dashboard reads the same without colour.
/// </summary>
internal enum Tone
{
    Normal,
    Dim,
    Good,
    Warn,
    Bad,
    Accent,
    Header,
    Selected,
    Title,
}

/// <summary>A run of text in one tone.</summary>
internal readonly record struct Span(string Text, Tone Tone);

/// <summary>One screen line: spans whose text fits the width it was rendered for.</summary>
internal sealed record Line(IReadOnlyList<Span> Spans)
{
    public static readonly Line Empty = new([]);

    /// <summary>The line as plain text (what a terminal without colour shows).</summary>
    public string Text => string.Concat(Spans.Select(s => s.Text));

    public static Line Of(string text, Tone tone = Tone.Normal) => new([new Span(text, tone)]);
}

/// <summary>Text fitting: every cell is one character (the dashboard prints no wide characters).</summary>
internal static class TuiText
{
    /// <summary>
    /// <paramref name="text"/> with control characters replaced (a model name or an upstream's error must not move the
    /// cursor) and cut to <paramref name="width"/> cells, an ellipsis marking the cut.
    /// </summary>
    public static string Fit(string text, int width)
    {
        if (width <= 0)
        {
            return "";
        }

        var clean = Clean(text);
        return clean.Length <= width ? clean : width == 1 ? "…" : string.Concat(clean.AsSpan(0, width - 1), "…");
    }

    /// <summary>Fitted and padded on the right to exactly <paramref name="width"/> cells.</summary>
    public static string Left(string text, int width) => Fit(text, width).PadRight(Math.Max(0, width));

    /// <summary>Fitted and padded on the left to exactly <paramref name="width"/> cells.</summary>
    public static string Right(string text, int width) => Fit(text, width).PadLeft(Math.Max(0, width));

    /// <summary>Control characters (C0, DEL, C1) and other non-printing characters as '?'.</summary>
    public static string Clean(string text)
    {
        if (!text.Any(NonPrinting))
        {
            return text;
        }

        var builder = new StringBuilder(text.Length);
        foreach (var c in text)
        {
            builder.Append(NonPrinting(c) ? '?' : c);
        }

        return builder.ToString();
    }

    /// <summary>
    /// Spans cut to <paramref name="width"/> cells in total and padded with <paramref name="fill"/>'s tone to
    /// exactly that width, so a line always overwrites the whole row it is drawn on.
    /// </summary>
    public static Line Clip(IEnumerable<Span> spans, int width, Tone fill = Tone.Normal)
    {
        var result = new List<Span>();
        var left = Math.Max(0, width);
        foreach (var span in spans)
        {
            if (left == 0)
            {
                break;
            }

            var text = Clean(span.Text);
            if (text.Length > left)
            {
                text = Fit(text, left);
            }

            if (text.Length > 0)
            {
                result.Add(span with { Text = text });
                left -= text.Length;
            }
        }

        if (left > 0)
        {
            result.Add(new Span(new string(' ', left), fill));
        }

        return new Line(result);
    }

    /// <summary>Words wrapped to lines of at most <paramref name="width"/> cells (a longer word is cut).</summary>
    public static IEnumerable<string> Wrap(string text, int width)
    {
        foreach (var paragraph in Clean(text.Replace("\r", "", StringComparison.Ordinal)).Split('\n'))
        {
            var line = new StringBuilder();
            foreach (var word in paragraph.Split(' '))
            {
                if (line.Length > 0 && line.Length + 1 + word.Length > width)
                {
                    yield return Fit(line.ToString(), width);
                    line.Clear();
                }

                if (line.Length > 0)
                {
                    line.Append(' ');
                }

                line.Append(word);
            }

            yield return Fit(line.ToString(), width);
        }
    }

    private static bool NonPrinting(char c) =>
        char.IsControl(c) || CharUnicodeInfo.GetUnicodeCategory(c) is UnicodeCategory.Format or UnicodeCategory.LineSeparator or UnicodeCategory.ParagraphSeparator;
}
