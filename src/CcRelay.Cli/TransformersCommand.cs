using System.CommandLine;
using System.Text;
using CcRelay.Core;

namespace CcRelay.Cli;

/// <summary>
/// <c>cc-relay transformers [--json]</c>: the built-in transformer catalog (docs/pipelines.md) — each transformer,
/// its options and defaults, the dialects it can apply to, whether it edits bytes in place — from Core's
/// <see cref="Transformers.catalog"/>, the same table config validation checks against.
/// </summary>
internal static class TransformersCommand
{
    public static Command Create()
    {
        var json = new Option<bool>("--json") { Description = "Print the catalog as JSON." };
        var command = new Command("transformers", "List the built-in pipeline transformers: options, defaults, what they apply to.")
        {
            json,
        };
        command.SetAction(parse =>
        {
            var output = parse.InvocationConfiguration.Output;
            output.Write(parse.GetValue(json) ? Encoding.UTF8.GetString(TransformerCatalog.json) + "\n" : TransformerCatalog.text);
            return ExitCodes.Success;
        });
        return command;
    }
}
