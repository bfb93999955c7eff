using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using CcRelay.Core;
using Tomlyn;
using Tomlyn.Model;
using Tomlyn.Parsing;
using Tomlyn.Syntax;

namespace CcRelay.Bench.TomlCompare;

/// <summary>
/// Runs CcRelay's TOML parser (Core <see cref="Toml"/>) and Tomlyn over the toml-test suite and over a few
/// documents shaped like our config, and prints how many files each gets right:
/// <list type="bullet">
/// <item>a valid file: accepted, with the values of its JSON twin;</item>
/// <item>an invalid file: rejected, and whether the error has a line and column.</item>
/// </list>
/// Tomlyn is used two ways: <c>SyntaxParser.Parse(text, validate: true)</c> (its strictest checks; the values
/// then come from its <see cref="Tomlyn.Model.TomlTable"/> model) and <c>TomlSerializer.Deserialize&lt;TomlTable&gt;</c>
/// alone (the untyped model its README shows).
/// <code>
/// dotnet run -c Release --project bench/TomlCompare                           # the repo's TOML 1.0.0 files
/// dotnet run -c Release --project bench/TomlCompare -- DIR files-toml-1.1.0 -v # another suite and list; every file
/// </code>
/// </summary>
internal static class Program
{
    private static readonly UTF8Encoding StrictUtf8 = new(false, true);

    private static int Main(string[] args)
    {
        var verbose = args.Contains("-v");
        var positional = args.Where(a => a != "-v").ToArray();
        var suite = positional.Length > 0 ? positional[0] : FindSuite();
        var list = positional.Length > 1 ? positional[1] : "files-toml-1.0.0";
        var files = File.ReadAllLines(Path.Combine(suite, list))
            .Where(f => f.EndsWith(".toml", StringComparison.Ordinal))
            .ToList();

        var cases = files.Select(file =>
        {
            var bytes = File.ReadAllBytes(Path.Combine(suite, file));
            var expected = file.StartsWith("valid/", StringComparison.Ordinal)
                ? Canonical(JsonNode.Parse(File.ReadAllText(Path.Combine(suite, file[..^5] + ".json"))))
                : null;
            return new Case(file, bytes, expected);
        }).ToList();

        Console.WriteLine($"toml-test: {suite} ({list}): {cases.Count(c => c.Expected is not null)} valid, {cases.Count(c => c.Expected is null)} invalid files");
        Compare(cases, verbose);

        Console.WriteLine();
        Console.WriteLine("Documents of our config's shape, beyond toml-test:");
        Compare(Extras, verbose: true);
        return 0;
    }

    /// <summary>One document and, when it is valid, its expected values in canonical form.</summary>
    private sealed record Case(string Name, byte[] Bytes, string? Expected);

    /// <summary>What a parser made of a document.</summary>
    private sealed record Outcome(bool Accepted, string Text, int Line = 0)
    {
        public static Outcome Values(JsonNode values) => new(true, Canonical(values));

        public static Outcome Error(int line, int column, string message) =>
            new(false, line > 0 ? $"error {line}:{column}: {message}" : $"error (no position): {message}", line);
    }

    private static readonly (string Name, Func<byte[], Outcome> Parse)[] Parsers =
    [
        ("CcRelay Toml.parseUtf8", Ours),
        ("Tomlyn SyntaxParser (validate)", TomlynSyntax),
        ("Tomlyn Deserialize<TomlTable>", TomlynModel),
    ];

    private static void Compare(IReadOnlyList<Case> cases, bool verbose)
    {
        var valid = cases.Count(c => c.Expected is not null);
        var invalid = cases.Count - valid;
        var results = cases.Select(c => Parsers.Select(p => p.Parse(c.Bytes)).ToArray()).ToList();

        bool Right(Case c, Outcome o) => c.Expected is null ? !o.Accepted : o.Accepted && o.Text == c.Expected;

        Console.WriteLine($"  {"parser",-32} {"valid: same values",20} {"invalid: rejected",18} {"with line:column",17} {"on our line",12}");
        for (var p = 0; p < Parsers.Length; p++)
        {
            var sameValues = cases.Where((c, i) => c.Expected is not null && Right(c, results[i][p])).Count();
            var rejected = cases.Where((c, i) => c.Expected is null && Right(c, results[i][p])).ToList();
            var located = cases.Where((c, i) => c.Expected is null && Right(c, results[i][p]) && results[i][p].Line > 0).Count();
            var ourLine = cases.Where((c, i) => c.Expected is null && Right(c, results[i][p]) && results[i][p].Line == results[i][0].Line).Count();
            Console.WriteLine($"  {Parsers[p].Name,-32} {$"{sameValues} / {valid}",20} {$"{rejected.Count} / {invalid}",18} {located,17} {ourLine,12}");
        }

        for (var i = 0; i < cases.Count; i++)
        {
            var c = cases[i];
            var right = results[i].Select(o => Right(c, o)).ToArray();
            if (!verbose && right.All(r => r))
            {
                continue;
            }

            Console.WriteLine($"  {c.Name}  [{string.Join(" ", right.Select(r => r ? "ok" : "WRONG"))}]");
            for (var p = 0; p < Parsers.Length; p++)
            {
                Console.WriteLine($"      {Parsers[p].Name,-32} {Shorten(results[i][p].Text)}");
            }

            if (c.Expected is not null && !right.All(r => r))
            {
                Console.WriteLine($"      {"expected",-32} {Shorten(c.Expected)}");
            }
        }
    }

    // ---- the parsers -------------------------------------------------------------------------------------

    private static Outcome Ours(byte[] bytes)
    {
        var parsed = Toml.parseUtf8(bytes);
        if (parsed.IsError)
        {
            var e = parsed.ErrorValue;
            return Outcome.Error(e.Position.Line, e.Position.Column, e.Message);
        }

        return Outcome.Values(FromNode(parsed.ResultValue));
    }

    private static Outcome TomlynSyntax(byte[] bytes) => WithTomlyn(bytes, text =>
    {
        var document = SyntaxParser.Parse(text, sourceName: null, validate: true);
        var first = document.Diagnostics.FirstOrDefault(d => d.Kind == DiagnosticMessageKind.Error);
        return first is null
            ? null
            : Outcome.Error(first.Span.Start.Line + 1, first.Span.Start.Column + 1, first.Message);
    });

    private static Outcome TomlynModel(byte[] bytes) => WithTomlyn(bytes, _ => null);

    /// <summary>Decodes strictly (Tomlyn reads text), runs <paramref name="check"/>, then reads Tomlyn's model.</summary>
    private static Outcome WithTomlyn(byte[] bytes, Func<string, Outcome?> check)
    {
        string text;
        try
        {
            using var reader = new StreamReader(new MemoryStream(bytes), StrictUtf8, detectEncodingFromByteOrderMarks: false);
            text = reader.ReadToEnd();
        }
        catch (DecoderFallbackException e)
        {
            return Outcome.Error(0, 0, ".NET's UTF-8 decoder: " + e.Message);
        }

        try
        {
            return check(text) ?? Outcome.Values(FromTomlyn(TomlSerializer.Deserialize<TomlTable>(text)));
        }
        catch (TomlException e)
        {
            return Outcome.Error(e.Line ?? 0, e.Column ?? 0, e.Message.ReplaceLineEndings(" "));
        }
    }

    // ---- documents beyond toml-test: invalid TOML (1.0 and 1.1) inside an array of tables, our config's shape

    private static readonly Case[] Extras =
    [
        Invalid("[[providers]] with keys = [...], then [[providers.keys]]",
            "[[providers]]\nname = \"zai\"\nkeys = [{ key = \"k1\" }]\n\n[[providers.keys]]\nkey = \"k2\"\n"),
        Invalid("[[providers]] with keys = {...}, then [[providers.keys]]",
            "[[providers]]\nname = \"zai\"\nkeys = { key = \"k1\" }\n\n[[providers.keys]]\nkey = \"k2\"\n"),
        Invalid("[[providers]] with an integer, then a [table] of the same name",
            "[[providers]]\nname = \"zai\"\npooling = 1\n\n[providers.pooling]\nenabled = true\n"),
        Invalid("[[providers]] with a dotted key, then a [table] of its name",
            "[[providers]]\nname = \"zai\"\npooling.enabled = true\n\n[providers.pooling]\nstrategy = \"least_loaded\"\n"),
        Invalid("the same at the top level (control)",
            "keys = [{ key = \"k1\" }]\n\n[[keys]]\nkey = \"k2\"\n"),
        Valid("U+FFFD written in a string", "s = \"\uFFFD\"\n", new JsonObject { ["s"] = Typed("string", "\uFFFD") }),
    ];

    private static Case Invalid(string name, string text) => new(name, Encoding.UTF8.GetBytes(text), null);

    private static Case Valid(string name, string text, JsonNode values) =>
        new(name, Encoding.UTF8.GetBytes(text), Canonical(values));

    // ---- canonical typed JSON (toml-test's format), so both parsers compare with the suite's JSON ---------

    private static JsonObject Typed(string type, string value) => new() { ["type"] = type, ["value"] = value };

    private static JsonNode FromNode(ConfigNode node) => node switch
    {
        ConfigNode.Mapping m => Object(m.Entries.Select(e => (e.Key, FromNode(e.Value)))),
        ConfigNode.Sequence s => new JsonArray([.. s.Items.Select(FromNode)]),
        ConfigNode.Scalar { Value: var v } => v switch
        {
            ScalarValue.String s => Typed("string", s.Value),
            ScalarValue.Integer i => Typed("integer", i.Value.ToString(CultureInfo.InvariantCulture)),
            ScalarValue.Float f => Typed("float", FloatText(f.Value)),
            ScalarValue.Boolean b => Typed("bool", b.Value ? "true" : "false"),
            ScalarValue.OffsetDateTime d => Typed("datetime", d.Text),
            ScalarValue.LocalDateTime d => Typed("datetime-local", d.Text),
            ScalarValue.LocalDate d => Typed("date-local", d.Text),
            ScalarValue.LocalTime d => Typed("time-local", d.Text),
            _ => Typed("unexpected", v.ToString() ?? ""),
        },
        _ => Typed("unexpected", node.ToString() ?? ""),
    };

    private static JsonNode FromTomlyn(object? value) => value switch
    {
        TomlTable t => Object(t.Select(kv => (kv.Key, FromTomlyn(kv.Value)))),
        TomlTableArray a => new JsonArray([.. a.Select(FromTomlyn)]),
        TomlArray a => new JsonArray([.. a.Select(FromTomlyn)]),
        string s => Typed("string", s),
        long l => Typed("integer", l.ToString(CultureInfo.InvariantCulture)),
        double d => Typed("float", FloatText(d)),
        bool b => Typed("bool", b ? "true" : "false"),
        TomlDateTime d => Typed(
            d.Kind switch
            {
                TomlDateTimeKind.OffsetDateTimeByZ or TomlDateTimeKind.OffsetDateTimeByNumber => "datetime",
                TomlDateTimeKind.LocalDateTime => "datetime-local",
                TomlDateTimeKind.LocalDate => "date-local",
                _ => "time-local",
            },
            d.ToString()),
        _ => Typed("unexpected " + value?.GetType().Name, value?.ToString() ?? "null"),
    };

    /// <summary>A JSON object; a key seen twice is kept twice (suffixed), so a duplicate shows as a difference.</summary>
    private static JsonObject Object(IEnumerable<(string Key, JsonNode Value)> entries)
    {
        var o = new JsonObject();
        foreach (var (key, value) in entries)
        {
            o[o.ContainsKey(key) ? key + " (again)" : key] = value;
        }

        return o;
    }

    private static string FloatText(double d) =>
        double.IsNaN(d) ? "nan"
        : double.IsPositiveInfinity(d) ? "inf"
        : double.IsNegativeInfinity(d) ? "-inf"
        : d.ToString("R", CultureInfo.InvariantCulture);

    /// <summary>Keys sorted, leaves as <c>type:value</c> with numbers and date-times normalised.</summary>
    private static string Canonical(JsonNode? node) => node switch
    {
        JsonObject o when o.Count == 2 && o["type"] is JsonValue type && o["value"] is JsonValue value =>
            Leaf(type.GetValue<string>(), value.GetValue<string>()),
        JsonObject o => "{" + string.Join(",", o.OrderBy(p => p.Key, StringComparer.Ordinal)
            .Select(p => JsonSerializer.Serialize(p.Key) + ":" + Canonical(p.Value))) + "}",
        JsonArray a => "[" + string.Join(",", a.Select(Canonical)) + "]",
        _ => "?" + node?.ToJsonString(),
    };

    private static string Leaf(string type, string value) => type switch
    {
        "float" => "float:" + value switch
        {
            "inf" or "+inf" => "inf",
            "-inf" => "-inf",
            "nan" or "+nan" or "-nan" => "nan",
            _ => double.Parse(value, CultureInfo.InvariantCulture).ToString("R", CultureInfo.InvariantCulture),
        },
        "integer" => "integer:" + long.Parse(value, CultureInfo.InvariantCulture).ToString(CultureInfo.InvariantCulture),
        "datetime" or "datetime-local" or "date-local" or "time-local" => type + ":" + DateTimeText(value),
        _ => type + ":" + JsonSerializer.Serialize(value),
    };

    /// <summary>Upper case, <c>T</c> between date and time, no trailing zeros in the fraction (toml-test writes .600 for .6).</summary>
    private static string DateTimeText(string text)
    {
        text = text.ToUpperInvariant();
        if (text.Length > 10 && text[10] == ' ')
        {
            text = text[..10] + "T" + text[11..];
        }

        var dot = text.IndexOf('.', StringComparison.Ordinal);
        if (dot < 0)
        {
            return text;
        }

        var stop = dot + 1;
        while (stop < text.Length && char.IsAsciiDigit(text[stop]))
        {
            stop++;
        }

        var fraction = text[(dot + 1)..stop].TrimEnd('0');
        return text[..dot] + (fraction.Length == 0 ? "" : "." + fraction) + text[stop..];
    }

    private static string Shorten(string text)
    {
        text = text.ReplaceLineEndings(" ");
        return text.Length > 160 ? text[..160] + "…" : text;
    }

    /// <summary><c>tests/fixtures/toml-test/tests</c>, found by walking up from the binaries to the repository.</summary>
    private static string FindSuite()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            var candidate = Path.Combine(dir.FullName, "tests", "fixtures", "toml-test", "tests");
            if (Directory.Exists(candidate))
            {
                return candidate;
            }
        }

        throw new DirectoryNotFoundException("tests/fixtures/toml-test/tests not found above " + AppContext.BaseDirectory);
    }
}
