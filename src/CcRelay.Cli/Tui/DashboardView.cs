using Terminal.Gui.Drawing;
using Terminal.Gui.Input;
using Terminal.Gui.ViewBase;
using Attribute = Terminal.Gui.Drawing.Attribute;

namespace CcRelay.Cli.Tui;

/// <summary>
/// The Terminal.Gui side of the dashboard, and all of it: paints the lines <see cref="DashboardRenderer"/> made for
/// the view's current size, and turns key presses into names for <see cref="TuiKeys"/>. Colours are the 16 ANSI
/// colours every terminal has.
/// </summary>
internal sealed class DashboardView : View
{
    private static readonly Attribute Normal = new(ColorName16.Gray, ColorName16.Black);

    private readonly DashboardStore _store;
    private readonly TimeProvider _time;
    private readonly Action<TuiAction> _act;

    public DashboardView(DashboardStore store, TimeProvider time, Action<TuiAction> act)
    {
        _store = store;
        _time = time;
        _act = act;
        Width = Dim.Fill();
        Height = Dim.Fill();
        CanFocus = true;
    }

    protected override bool OnDrawingContent(DrawContext? context)
    {
        var viewport = Viewport;
        var lines = DashboardRenderer.Render(_store.Current, viewport.Width, viewport.Height, _time.GetUtcNow(), TimeZoneInfo.Local);
        for (var y = 0; y < lines.Count; y++)
        {
            Move(0, y);
            foreach (var span in lines[y].Spans)
            {
                SetAttribute(Paint(span.Tone));
                AddStr(span.Text);
            }
        }

        SetAttribute(Normal);
        return true;
    }

    protected override bool OnKeyDown(Key key)
    {
        var name = Name(key);
        if (name is null)
        {
            return false;
        }

        _act(TuiKeys.Map(name, _store.Current.Overlay is not null));
        return true;
    }

    /// <summary>The key as <see cref="TuiKeys"/> names it; null for a key the dashboard does not use.</summary>
    private static string? Name(Key key)
    {
        if (key == Key.C.WithCtrl)
        {
            return "Ctrl+C";
        }

        if (key.IsCtrl || key.IsAlt)
        {
            return null;
        }

        return key.KeyCode switch
        {
            _ when key == Key.CursorUp => "Up",
            _ when key == Key.CursorDown => "Down",
            _ when key == Key.PageUp => "PageUp",
            _ when key == Key.PageDown => "PageDown",
            _ when key == Key.Home => "Home",
            _ when key == Key.End => "End",
            _ when key == Key.Enter => "Enter",
            _ when key == Key.Esc => "Esc",
            _ when key == Key.Space => "Space",
            _ => key.AsRune.Value is > 32 and < 127 ? ((char)key.AsRune.Value).ToString() : null,
        };
    }

    private static Attribute Paint(Tone tone) => tone switch
    {
        Tone.Dim => new Attribute(ColorName16.DarkGray, ColorName16.Black),
        Tone.Good => new Attribute(ColorName16.BrightGreen, ColorName16.Black),
        Tone.Warn => new Attribute(ColorName16.BrightYellow, ColorName16.Black),
        Tone.Bad => new Attribute(ColorName16.BrightRed, ColorName16.Black),
        Tone.Accent => new Attribute(ColorName16.BrightCyan, ColorName16.Black),
        Tone.Header => new Attribute(ColorName16.White, ColorName16.Blue),
        Tone.Selected => new Attribute(ColorName16.Black, ColorName16.BrightCyan),
        Tone.Title => new Attribute(ColorName16.Black, ColorName16.BrightCyan),
        _ => Normal,
    };
}
