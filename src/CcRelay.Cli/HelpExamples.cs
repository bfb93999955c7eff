using System.CommandLine;
using System.CommandLine.Help;
using System.CommandLine.Invocation;
using System.Runtime.CompilerServices;

namespace CcRelay.Cli;

/// <summary>
/// Examples under a command's <c>--help</c>: System.CommandLine's help shows a command's description (and lists
/// every subcommand with its description), so examples kept out of the description keep the listings short and
/// are printed after the help of the command they belong to.
/// </summary>
internal static class HelpExamples
{
    private static readonly ConditionalWeakTable<Command, string[]> Examples = [];

    /// <summary>Gives <paramref name="command"/> its examples (one command line each, comments allowed) and returns it.</summary>
    public static T WithExamples<T>(this T command, params string[] examples)
        where T : Command
    {
        Examples.AddOrUpdate(command, examples);
        return command;
    }

    /// <summary>
    /// Makes <paramref name="root"/>'s help option print each command's examples after its help. A command whose
    /// description ends in an <c>Examples:</c> paragraph (one indented command line each) has it moved there.
    /// </summary>
    public static RootCommand ShowingExamples(this RootCommand root)
    {
        MoveExamples(root);
        var help = root.Options.OfType<HelpOption>().Single();
        help.Action = new ExamplesAction((SynchronousCommandLineAction)help.Action!);
        return root;
    }

    private static void MoveExamples(Command command)
    {
        const string Heading = "\n\nExamples:\n";
        var description = command.Description?.ReplaceLineEndings("\n");
        var at = description?.IndexOf(Heading, StringComparison.Ordinal) ?? -1;
        if (description is not null && at >= 0)
        {
            command.Description = description[..at];
            command.WithExamples([.. description[(at + Heading.Length)..].Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(line => line.Trim())]);
        }

        foreach (var subcommand in command.Subcommands)
        {
            MoveExamples(subcommand);
        }
    }

    private sealed class ExamplesAction(SynchronousCommandLineAction help) : SynchronousCommandLineAction
    {
        /// <summary>As help's: <c>--help</c> on a command missing its arguments shows the help, not the error.</summary>
        public override bool ClearsParseErrors => help.ClearsParseErrors;

        public override int Invoke(ParseResult parseResult)
        {
            var code = help.Invoke(parseResult);
            if (Examples.TryGetValue(parseResult.CommandResult.Command, out var examples))
            {
                var output = parseResult.InvocationConfiguration.Output;
                output.WriteLine("Examples:");
                foreach (var example in examples)
                {
                    output.WriteLine("  " + example);
                }

                output.WriteLine();
            }

            return code;
        }
    }
}
