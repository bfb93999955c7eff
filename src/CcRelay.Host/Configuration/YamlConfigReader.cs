using System.Text.RegularExpressions;
using CcRelay.Core;
using YamlDotNet.Core;
using YamlDotNet.Core.Events;

namespace CcRelay.Host.Configuration;

/// <summary>
/// Parses YAML text into the Core <see cref="ConfigNode"/> tree, keeping 1-based line/column positions.
/// Scalars stay untyped (<see cref="ScalarValue.Plain"/> or <see cref="ScalarValue.String"/>): the Core
/// decoder types them by the schema. Anchors, aliases and <c>&lt;&lt;</c> merge keys work; a duplicate key,
/// an unknown alias, a non-scalar key, a second document and a syntax error are errors with positions.
/// </summary>
public static partial class YamlConfigReader
{
    private const string StringTag = "tag:yaml.org,2002:str";

    /// <summary>Parses <paramref name="text"/>; on failure <paramref name="errors"/> lists every problem found.</summary>
    /// <returns>True when the text is one well-formed YAML document (an empty text is an empty mapping).</returns>
    public static bool TryRead(string text, out ConfigNode document, out IReadOnlyList<ConfigIssue> errors)
    {
        ArgumentNullException.ThrowIfNull(text);
        var walker = new Walker(new Parser(new StringReader(text)));
        document = walker.ReadStream();
        errors = walker.Errors;
        return walker.Errors.Count == 0;
    }

    /// <summary>YamlDotNet prefixes messages with "(Line: …) - (Line: …): "; the issue carries the position itself.</summary>
    [GeneratedRegex(@"^\(Line: \d+, Col: \d+, Idx: \d+\) - \(Line: \d+, Col: \d+, Idx: \d+\): ")]
    private static partial Regex MarkPrefix();

    private static Position At(Mark mark) => new(Math.Max(1, (int)mark.Line), Math.Max(1, (int)mark.Column));

    /// <summary>One pass over the parser's events; collects errors instead of throwing.</summary>
    private sealed class Walker(IParser parser)
    {
        private readonly Dictionary<string, ConfigNode> _anchors = new(StringComparer.Ordinal);
        private readonly List<ConfigIssue> _errors = [];
        private string _path = "";

        public IReadOnlyList<ConfigIssue> Errors => _errors;

        public ConfigNode ReadStream()
        {
            var document = ConfigNode.Empty;
            try
            {
                parser.Consume<StreamStart>();
                if (parser.TryConsume<DocumentStart>(out _))
                {
                    document = ReadNode("");
                    parser.Consume<DocumentEnd>();
                    if (parser.Accept<DocumentStart>(out var second))
                    {
                        Error("(document)", second.Start, "only one YAML document is allowed in a config file");
                    }
                }
            }
            catch (YamlException ex)
            {
                var path = _path.Length == 0 ? "(document)" : _path;
                Error(path, ex.Start, "YAML syntax error: " + MarkPrefix().Replace(ex.Message, ""));
            }

            return document;
        }

        private void Error(string path, Mark at, string message) =>
            _errors.Add(ConfigIssue.At(path, At(at).Line, At(at).Column, message));

        private ConfigNode ReadNode(string path)
        {
            _path = path;
            var current = parser.Current ?? throw new YamlException("unexpected end of the YAML stream");
            switch (current)
            {
                case AnchorAlias alias:
                    parser.MoveNext();
                    if (_anchors.TryGetValue(alias.Value.Value, out var target))
                    {
                        return target;
                    }

                    Error(path, alias.Start, $"unknown alias *{alias.Value.Value}: no anchor &{alias.Value.Value} before it");
                    return ConfigNode.NewScalar(ScalarValue.Null, At(alias.Start));

                case Scalar scalar:
                    parser.MoveNext();
                    return Remember(scalar.Anchor, ConfigNode.NewScalar(ScalarOf(scalar), At(scalar.Start)));

                case SequenceStart start:
                    parser.MoveNext();
                    return Remember(start.Anchor, ReadSequence(path, start));

                case MappingStart start:
                    parser.MoveNext();
                    return Remember(start.Anchor, ReadMapping(path, start));

                default:
                    throw new YamlException(current.Start, current.End, $"unexpected {current.GetType().Name}");
            }
        }

        private ConfigNode Remember(AnchorName anchor, ConfigNode node)
        {
            if (!anchor.IsEmpty)
            {
                _anchors[anchor.Value] = node;
            }

            return node;
        }

        private static ScalarValue ScalarOf(Scalar scalar)
        {
            // A quoted or block scalar, or one tagged !!str or "!", is text; plain ones are typed by the schema.
            var tag = scalar.Tag;
            var isText = scalar.Style != ScalarStyle.Plain
                || tag.IsNonSpecific
                || (!tag.IsEmpty && tag.Value == StringTag);
            return isText ? ScalarValue.NewString(scalar.Value) : ScalarValue.NewPlain(scalar.Value);
        }

        private ConfigNode ReadSequence(string path, SequenceStart start)
        {
            var items = new List<ConfigNode>();
            while (!parser.TryConsume<SequenceEnd>(out _))
            {
                items.Add(ReadNode($"{path}[{items.Count}]"));
            }

            return ConfigNode.SequenceOf(items, At(start.Start));
        }

        private ConfigNode ReadMapping(string path, MappingStart start)
        {
            var entries = new List<MappingEntry>();
            var seen = new Dictionary<string, Position>(StringComparer.Ordinal);
            var merged = new List<MappingEntry>();
            while (!parser.TryConsume<MappingEnd>(out _))
            {
                var keyEvent = parser.Current;
                if (keyEvent is not Scalar key)
                {
                    var node = ReadNode(path);
                    var at = node.Position;
                    _errors.Add(ConfigIssue.At(path.Length == 0 ? "(document)" : path, at.Line, at.Column,
                        "a mapping key must be a plain string, not a list, mapping or alias"));
                    ReadNode(path);
                    continue;
                }

                parser.MoveNext();
                var keyAt = At(key.Start);
                var childPath = path.Length == 0 ? key.Value : $"{path}.{key.Value}";

                // YAML 1.1 merge key (`<<: *defaults`): widely used with anchors in config files.
                if (key.Value == "<<" && key.Style == ScalarStyle.Plain)
                {
                    merged.AddRange(MergeSources(path, ReadNode(path)));
                    continue;
                }

                var value = ReadNode(childPath);
                if (seen.TryGetValue(key.Value, out var first))
                {
                    _errors.Add(ConfigIssue.At(childPath, keyAt.Line, keyAt.Column,
                        $"duplicate key \"{key.Value}\" (first at line {first.Line}); each key may appear once"));
                    continue;
                }

                seen.Add(key.Value, keyAt);
                entries.Add(new MappingEntry(key.Value, keyAt, value));
            }

            // Explicit keys win over merged ones; among merged sources, the first wins.
            foreach (var entry in merged)
            {
                if (seen.TryAdd(entry.Key, entry.KeyAt))
                {
                    entries.Add(entry);
                }
            }

            return ConfigNode.MappingOf(entries, At(start.Start));
        }

        private IEnumerable<MappingEntry> MergeSources(string path, ConfigNode value)
        {
            switch (value)
            {
                case ConfigNode.Mapping mapping:
                    return mapping.Entries;
                case ConfigNode.Sequence sequence when sequence.Items.All(i => i.IsMapping):
                    return sequence.Items.SelectMany(i => ((ConfigNode.Mapping)i).Entries);
                default:
                    var at = value.Position;
                    _errors.Add(ConfigIssue.At(path.Length == 0 ? "(document)" : path, at.Line, at.Column,
                        "a merge key (<<) needs a mapping or a list of mappings"));
                    return [];
            }
        }
    }
}
