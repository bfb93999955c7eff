using System.CommandLine;
using System.Text;
using System.Text.Json;
using Google.Protobuf;
using Grpc.Core;

namespace CcRelay.Cli.Api;

/// <summary>What a command that talks to a running relay gets: the parse, the target and its client, the writers.</summary>
internal sealed record ApiContext(ParseResult Parse, RelayTarget Target, RelayClient Client, TextWriter Output, TextWriter Error, bool Json, CancellationToken Cancel);

/// <summary>
/// The shared shape of the commands over the management API: resolve the target, call, print; a failed call is
/// said for a person and mapped to the documented exit codes (unreachable: <c>unreachable</c>, 1 unless the
/// command says otherwise; refused — unknown name, invalid argument, precondition — 2; anything else 1).
/// </summary>
internal static class ApiCommand
{
    private static readonly JsonFormatter Formatter = new(JsonFormatter.Settings.Default.WithPreserveProtoFieldNames(true).WithFormatDefaultValues(true));

    /// <summary>Sets <paramref name="command"/>'s action to <paramref name="run"/> over the resolved target.</summary>
    public static Command WithAction(
        this Command command,
        ApiOptions options,
        CliEnvironment environment,
        Func<ApiContext, Task<int>> run,
        int unreachable = ExitCodes.Failure)
    {
        command.SetAction(async (parse, cancellationToken) =>
        {
            var (output, error) = (parse.InvocationConfiguration.Output, parse.InvocationConfiguration.Error);
            if (RelayTarget.Resolve(parse, options, environment, error) is not { } target)
            {
                return ExitCodes.InvalidConfig;
            }

            using var client = target.Connect();
            try
            {
                return await run(new ApiContext(parse, target, client, output, error, parse.GetValue(options.Json), cancellationToken));
            }
            catch (RpcException e)
            {
                await error.WriteLineAsync($"cc-relay: {client.Describe(e)}");
                return e.StatusCode switch
                {
                    _ when RelayClient.IsUnreachable(e) => unreachable,
                    StatusCode.NotFound or StatusCode.InvalidArgument or StatusCode.FailedPrecondition or StatusCode.AlreadyExists => ExitCodes.InvalidConfig,
                    _ => ExitCodes.Failure,
                };
            }
        });
        return command;
    }

    /// <summary>A message as JSON, field names as in the proto (snake_case), defaults included.</summary>
    public static string Json(IMessage message) => Formatter.Format(message);

    /// <summary>An object of named JSON values (each already JSON), indented as one document.</summary>
    public static string Object(params (string Name, string Json)[] members)
    {
        using var stream = new MemoryStream();
        using (var writer = new Utf8JsonWriter(stream, new JsonWriterOptions { Indented = true }))
        {
            writer.WriteStartObject();
            foreach (var (name, json) in members)
            {
                writer.WritePropertyName(name);
                writer.WriteRawValue(json);
            }

            writer.WriteEndObject();
        }

        return Encoding.UTF8.GetString(stream.ToArray());
    }

    /// <summary>A JSON array of messages.</summary>
    public static string Array(IEnumerable<IMessage> messages) => "[" + string.Join(",", messages.Select(Json)) + "]";

    /// <summary>A JSON string.</summary>
    public static string String(string text) => JsonSerializer.Serialize(text, CliJsonContext.Default.String);

    /// <summary>Milliseconds as a person reads them: 850 ms, 12.3 s, 4m05s, 2h03m, 3d04h.</summary>
    public static string Duration(long milliseconds)
    {
        var t = TimeSpan.FromMilliseconds(Math.Max(0, milliseconds));
        return t.TotalSeconds < 1 ? $"{t.TotalMilliseconds:0} ms"
            : t.TotalMinutes < 1 ? $"{t.TotalSeconds:0.0} s"
            : t.TotalHours < 1 ? $"{t.Minutes}m{t.Seconds:00}s"
            : t.TotalDays < 1 ? $"{(int)t.TotalHours}h{t.Minutes:00}m"
            : $"{(int)t.TotalDays}d{t.Hours:00}h";
    }

    /// <summary>Rows as columns, each as wide as its widest cell, two spaces apart.</summary>
    public static void Table(TextWriter output, string[] header, IEnumerable<string[]> rows)
    {
        var all = rows.Prepend(header).ToList();
        var widths = Enumerable.Range(0, header.Length).Select(i => all.Max(r => r[i].Length)).ToArray();
        foreach (var row in all)
        {
            output.WriteLine(string.Join("  ", row.Select((cell, i) => i == row.Length - 1 ? cell : cell.PadRight(widths[i]))).TrimEnd());
        }
    }
}

/// <summary>Source-generated JSON for the few plain values the CLI writes (Native AOT has no reflection-based serializer).</summary>
[System.Text.Json.Serialization.JsonSerializable(typeof(string))]
internal sealed partial class CliJsonContext : System.Text.Json.Serialization.JsonSerializerContext;
