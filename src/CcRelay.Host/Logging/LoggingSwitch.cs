using CcRelay.Core;
using Microsoft.Extensions.Logging.Console;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Primitives;
using MsLogLevel = Microsoft.Extensions.Logging.LogLevel;

namespace CcRelay.Host.Logging;

/// <summary>
/// The logging settings in force, changeable while the relay runs: the level (and whether lines go to the
/// console or to the file sink) is checked by a filter on every log call, and the console formatter and
/// stream follow <see cref="ConsoleLoggerOptions"/>, whose change token this class fires.
/// </summary>
public sealed class LoggingSwitch : IOptionsChangeTokenSource<ConsoleLoggerOptions>
{
    private static readonly string ConsoleProvider = typeof(ConsoleLoggerProvider).FullName!;
    private static readonly string FileProvider = typeof(LogFile).FullName!;
    private volatile LoggingConfig _current;
    private CancellationTokenSource _changed = new();

    /// <summary>Starts with the given settings.</summary>
    public LoggingSwitch(LoggingConfig initial) => _current = initial;

    /// <summary>The settings in force.</summary>
    public LoggingConfig Current => _current;

    string IOptionsChangeTokenSource<ConsoleLoggerOptions>.Name => Options.DefaultName;

    /// <summary>Applies new settings to every logger at once.</summary>
    public void Apply(LoggingConfig next)
    {
        ArgumentNullException.ThrowIfNull(next);
        if (next.Equals(_current))
        {
            return;
        }

        _current = next;
        var previous = Interlocked.Exchange(ref _changed, new CancellationTokenSource());
        previous.Cancel();
        previous.Dispose();
    }

    /// <summary>Whether <c>logging.output</c> names a file (anything but <c>stdout</c> and <c>stderr</c>).</summary>
    public bool WritesToFile => IsFile(_current.Output);

    private const string HostingDiagnostics = "Microsoft.AspNetCore.Hosting.Diagnostics";

    /// <summary>
    /// Whether the logger provider <paramref name="provider"/> (its type's full name, as logging filters see it)
    /// writes a line of <paramref name="level"/> in <paramref name="category"/>: the console only while
    /// <c>logging.output</c> is a stream, the file sink only while it is a file, any other provider (a test's,
    /// an embedding application's) always.
    /// </summary>
    public bool Allows(string? provider, string? category, MsLogLevel level)
    {
        if (provider is not null)
        {
            if (string.Equals(provider, ConsoleProvider, StringComparison.Ordinal) && WritesToFile)
            {
                return false;
            }

            if (string.Equals(provider, FileProvider, StringComparison.Ordinal) && !WritesToFile)
            {
                return false;
            }
        }

        return Allows(category, level);
    }

    /// <summary>Whether a line of <paramref name="level"/> in <paramref name="category"/> is written.</summary>
    public bool Allows(string? category, MsLogLevel level)
    {
        // ASP.NET Core's per-request start/finish lines: the relay writes its own request line. Enabled, the
        // category alone makes hosting start an Activity and a logging scope for every request.
        if (string.Equals(category, HostingDiagnostics, StringComparison.Ordinal))
        {
            return false;
        }

        var minimum = ToMicrosoft(_current.Level);
        // the framework's own chatter stays at warnings and above, whatever the relay's level
        if (category is not null && (category.StartsWith("Microsoft", StringComparison.Ordinal) || category.StartsWith("System", StringComparison.Ordinal)))
        {
            minimum = (MsLogLevel)Math.Max((int)minimum, (int)MsLogLevel.Warning);
        }

        return level >= minimum;
    }

    /// <summary>Sets the console options from the settings in force.</summary>
    public void Configure(ConsoleLoggerOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.FormatterName = _current.Format.IsJson ? JsonLineFormatter.FormatterName : ConsoleFormatterNames.Simple;
        options.LogToStandardErrorThreshold = _current.Output == "stderr" ? MsLogLevel.Trace : MsLogLevel.None;
    }

    internal static bool IsFile(string output) => output is not ("stdout" or "stderr" or "");

    /// <summary>Fires when <see cref="Apply"/> changes the settings.</summary>
    internal IChangeToken GetChangeToken() => new CancellationChangeToken(_changed.Token);

    IChangeToken IOptionsChangeTokenSource<ConsoleLoggerOptions>.GetChangeToken() => GetChangeToken();

    private static MsLogLevel ToMicrosoft(Core.LogLevel level) =>
        level.Tag switch
        {
            Core.LogLevel.Tags.Debug => MsLogLevel.Debug,
            Core.LogLevel.Tags.Warn => MsLogLevel.Warning,
            Core.LogLevel.Tags.Error => MsLogLevel.Error,
            _ => MsLogLevel.Information,
        };
}
