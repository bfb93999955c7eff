using System.Text.Json.Nodes;
using CcRelay.Host.Tests.Infrastructure;

namespace CcRelay.Host.Tests.Interop;

/// <summary>One header as tests/Interop/eventstream.mjs writes and reads it (smithy's type names).</summary>
internal sealed record SmithyHeader(string Name, string Type, JsonNode? Value)
{
    public static SmithyHeader String(string name, string value) => new(name, "string", JsonValue.Create(value));
}

/// <summary>One message as tests/Interop/eventstream.mjs writes and reads it.</summary>
internal sealed record SmithyMessage(IReadOnlyList<SmithyHeader> Headers, byte[] Payload);

/// <summary>
/// The AWS SDK for JavaScript's event-stream codec (@smithy/eventstream-codec, pinned in tests/Interop), run
/// through <c>node tests/Interop/eventstream.mjs</c>: the independent implementation the relay's codec is
/// checked against. Node is required; without it the tests fail (CI installs it, tests/run-all.sh too).
/// </summary>
internal static class SmithyEventStream
{
    /// <summary>The concatenated frames smithy encodes for the messages.</summary>
    public static async Task<byte[]> EncodeAsync(params SmithyMessage[] messages)
    {
        var input = new JsonArray(messages.Select(m => (JsonNode)new JsonObject
        {
            ["headers"] = new JsonArray(m.Headers.Select(h => (JsonNode)new JsonObject
            {
                ["name"] = h.Name,
                ["type"] = h.Type,
                ["value"] = h.Value?.DeepClone(),
            }).ToArray()),
            ["payload"] = Convert.ToBase64String(m.Payload),
        }).ToArray());
        return Convert.FromBase64String(await RunAsync("encode", input.ToJsonString()));
    }

    /// <summary>The messages smithy decodes from concatenated frames (it throws on any damage).</summary>
    public static async Task<IReadOnlyList<SmithyMessage>> DecodeAsync(byte[] frames)
    {
        var output = JsonNode.Parse(await RunAsync("decode", Convert.ToBase64String(frames)))!.AsArray();
        return output.Select(m => new SmithyMessage(
            m!["headers"]!.AsArray()
                .Select(h => new SmithyHeader(h!["name"]!.GetValue<string>(), h["type"]!.GetValue<string>(), h["value"]?.DeepClone()))
                .ToList(),
            Convert.FromBase64String(m["payload"]!.GetValue<string>()))).ToList();
    }

    private static string RepoRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "CcRelay.sln")))
            {
                return dir.FullName;
            }
        }

        throw new DirectoryNotFoundException("CcRelay.sln not found above " + AppContext.BaseDirectory);
    }

    private static async Task<string> RunAsync(string mode, string input)
    {
        var interop = Path.Combine(RepoRoot(), "tests", "Interop");
        if (!Directory.Exists(Path.Combine(interop, "node_modules", "@smithy", "eventstream-codec")))
        {
            Assert.Fail($"@smithy/eventstream-codec is not installed: run `npm ci` in {interop} (tests/run-all.sh does)");
        }

        var (exitCode, output, error) = await ToolProcess.RunAsync("node", [Path.Combine(interop, "eventstream.mjs"), mode], input, "the event-stream interop tests need Node.js (CI and tests/run-all.sh install it)", interop);
        if (exitCode != 0)
        {
            Assert.Fail($"node eventstream.mjs {mode} exited with {exitCode}: {error}");
        }

        return output;
    }

    /// <summary>A header value as JSON, for comparing decoded headers.</summary>
    public static string Show(SmithyHeader header) => $"{header.Name}:{header.Type}={header.Value?.ToJsonString()}";
}
