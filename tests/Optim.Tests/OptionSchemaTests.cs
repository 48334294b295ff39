using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using Optim.Tests.Support;
using TorchSharp;
using TorchSharp.Modules;

namespace Optim.Tests;

/// <summary>
/// What every algorithm's option schema promises, checked for every algorithm of the catalog: every public option
/// survives a state dict and a checkpoint with a value other than its default, and the defaults the constructors
/// repeat in their signatures are the options record's.
/// </summary>
public class OptionSchemaTests
{
    // Matrices, which every algorithm takes (Muon nothing else).
    private static Parameter[] Params() => new[] { new Parameter(torch.ones(1, 2)), new Parameter(torch.ones(1, 3)) };

    // Values to try for a hyperparameter, per type; the first that differs from the default and keeps the options
    // valid is used. A new type or rule that none of them suits makes the tests below fail, not pass silently.
    private static IEnumerable<object?> Candidates(Hyperparameter h, object? current) => h.Type switch
    {
        HyperparameterType.Double => new object?[] { 0.5, 0.25, 0.125, 1e-3, 0.75, 2.0, 0.0 },
        HyperparameterType.Bool => new object?[] { !(bool)current! },
        HyperparameterType.Int => new object?[] { (int)current! + 1, (int)current! + 2, 1, 10 },
        HyperparameterType.Long => new object?[] { (long)current! + 1, (long)current! + 2, 1L, 10L },
        HyperparameterType.String => h.Rule.StartsWith("one of ", StringComparison.Ordinal)
            ? h.Rule["one of ".Length..].Split(", ").Select(v => v == "None" ? null : v)
            // A rule that quotes its values (LBFGS's "None or 'strong_wolfe'"): those, and None where it allows it.
            : System.Text.RegularExpressions.Regex.Matches(h.Rule, "'([^']*)'").Select(m => (object?)m.Groups[1].Value)
                .Concat(h.Rule.Contains("None", StringComparison.Ordinal) ? new object?[] { null } : Array.Empty<object?>())
                .Concat(new object?[] { "x", null }),
        HyperparameterType.Enum => Enum.GetValues(h.ValueType).Cast<object?>(),
        HyperparameterType.DoublePair => new object?[] { (0.5, 0.25), (0.8, 0.9), (0.5, 1.5), (0.25, 2.0) },
        HyperparameterType.DoubleList => new object?[] { new[] { 0.5 }, new[] { 0.25, 0.5 }, new[] { 2.0, -1.5, 0.5 } },
        _ => Array.Empty<object?>(),
    };

    private static bool SameValue(object? a, object? b) =>
        a is IEnumerable<double> x && b is IEnumerable<double> y ? x.SequenceEqual(y) : Equals(a, b);

    /// <summary>
    /// Option sets that together give every hyperparameter a non-default value: one with as many changed as stay valid
    /// together, and for each hyperparameter one that changes it, with one other where a rule ties them (SGD's
    /// Nesterov needs momentum).
    /// </summary>
    private static List<List<KeyValuePair<string, object?>>> NonDefaultSets(AlgorithmInfo algorithm)
    {
        var defaults = algorithm.DefaultOptions;
        var schema = algorithm.Schema;
        IEnumerable<KeyValuePair<string, object?>> Changes(Hyperparameter h) =>
            Candidates(h, h.GetValue(defaults)).Where(v => !SameValue(v, h.GetValue(defaults))).Select(v => new KeyValuePair<string, object?>(h.Name, v));

        var sets = new List<List<KeyValuePair<string, object?>>>();
        var greedy = new List<KeyValuePair<string, object?>>();
        for (var pass = 0; pass < 2; pass++)
        {
            foreach (var h in schema.Where(h => greedy.All(g => g.Key != h.Name)))
            {
                var change = Changes(h).FirstOrDefault(c => Algorithms.IsValid(algorithm, greedy.Append(c)));
                if (change.Key is not null) greedy.Add(change);
            }
        }
        sets.Add(greedy);
        foreach (var h in schema)
        {
            var alone = Changes(h).Select(c => new List<KeyValuePair<string, object?>> { c }).FirstOrDefault(s => Algorithms.IsValid(algorithm, s));
            alone ??= (from c in Changes(h)
                       from other in schema.Where(o => o != h).SelectMany(Changes)
                       let s = new List<KeyValuePair<string, object?>> { c, other }
                       where Algorithms.IsValid(algorithm, s)
                       select s).FirstOrDefault();
            sets.Add(alone ?? throw new InvalidOperationException(
                $"No candidate value other than the default is valid for {algorithm}'s '{h.Name}' ({h.Type}, {h.Rule}): extend Candidates."));
        }
        return sets;
    }

    public static TheoryData<string> AlgorithmNames() => Algorithms.NameData();

    [Theory]
    [MemberData(nameof(AlgorithmNames))]
    public void Every_option_gets_a_non_default_value_in_some_tested_set(string name)
    {
        var algorithm = Algorithms.Get(name);
        var changed = NonDefaultSets(algorithm).SelectMany(s => s.Select(c => c.Key)).ToHashSet();
        changed.Should().BeEquivalentTo(algorithm.Schema.Select(h => h.Name));
    }

    [Theory]
    [MemberData(nameof(AlgorithmNames))]
    public void Every_option_round_trips_through_a_state_dict_and_a_checkpoint_with_a_non_default_value(string name)
    {
        var algorithm = Algorithms.Get(name);
        foreach (var set in NonDefaultSets(algorithm))
        {
            var because = $"{name} with {string.Join(", ", set.Select(s => $"{s.Key}={HyperparameterText.Format(s.Value)}"))}";
            var ps = Params();
            using var original = algorithm.Create(ps, set);
            // A second group with other values, so group order and per-group values count too; LBFGS takes one group.
            var secondGroup = !algorithm.SingleGroupOnly;
            if (secondGroup) TypedGroups.Add(original, new[] { new Parameter(torch.ones(1, 4)) }, o => o with { Lr = 0.0625 });
            foreach (var p in original.parameters()) p.grad = Algorithms.Gradient(algorithm, torch.ones_like(p));
            Algorithms.Step(original); // LBFGS: through a closure, so its optimizer-wide state is in the round trip too
            var expected = TypedGroups.Options(original);
            expected[0].ToHyperparameters().Should().Contain(set, because);

            var sd = original.StateDict();
            using var viaStateDict = algorithm.Create(Params());
            if (secondGroup) TypedGroups.Add(viaStateDict, new[] { new Parameter(torch.ones(1, 4)) });
            viaStateDict.LoadStateDict(sd);
            TypedGroups.Options(viaStateDict).Should().Equal(expected, because);
            viaStateDict.StateDict().ParamGroups.Select(g => g.Hyperparameters).Should().BeEquivalentTo(
                sd.ParamGroups.Select(g => g.Hyperparameters), o => o.WithStrictOrdering(), because);

            using var stream = new MemoryStream();
            original.Save(stream);
            stream.Position = 0;
            using var viaCheckpoint = algorithm.Create(Params());
            if (secondGroup) TypedGroups.Add(viaCheckpoint, new[] { new Parameter(torch.ones(1, 4)) });
            viaCheckpoint.Load(stream);
            TypedGroups.Options(viaCheckpoint).Should().Equal(expected, because);
        }
    }

    [Theory]
    [MemberData(nameof(AlgorithmNames))]
    public void The_catalogs_flags_describe_what_the_optimizer_does(string name)
    {
        // What generic tests read to include or leave out an algorithm must be true of the optimizer itself.
        var algorithm = Algorithms.Get(name);
        algorithm.Schema.Find("implementation").Should().Match<Hyperparameter?>(h => (h != null) == algorithm.HasImplementations,
            $"{name}'s HasImplementations says whether it has the implementation option");
        if (!algorithm.HasImplementations) (algorithm.HasForeach || algorithm.HasFusedKernel).Should().BeFalse();

        var ps = Params();
        using var opt = algorithm.Create(ps);
        foreach (var p in ps) p.grad = Algorithms.Gradient(algorithm, torch.ones_like(p));
        var withoutClosure = () => opt.step();
        if (algorithm.RequiresClosure)
            withoutClosure.Should().Throw<ArgumentNullException>().WithMessage($"{name} requires a closure*");
        else
            withoutClosure.Should().NotThrow();

        var secondGroup = () => TypedGroups.Add(opt, new[] { new Parameter(torch.ones(1, 4)) });
        if (algorithm.SingleGroupOnly)
            secondGroup.Should().Throw<ArgumentException>();
        else
            secondGroup.Should().NotThrow();
    }

    [Theory]
    [MemberData(nameof(AlgorithmNames))]
    public void The_constructors_defaults_are_the_options_records(string name)
    {
        // A pair (Rprop's etas) is two arguments in TorchSharp's constructors (etaminus, etaplus).
        // Every constructor repeats the defaults in its signature (as TorchSharp's do); they may never drift from the
        // options record. Argument names are the schema's (PyTorch's) names.
        var algorithm = Algorithms.Get(name);
        var defaults = algorithm.DefaultOptions;
        var constructors = algorithm.OptimizerType.GetConstructors();
        constructors.Should().Contain(c => c.GetParameters()[0].ParameterType == typeof(IEnumerable<Parameter>), "TorchSharp's form over a parameter list");
        foreach (var ctor in constructors)
        {
            // `flat` chooses the memory layout (Optimizer<TOptions>.Flat), not a hyperparameter: no state dict carries it.
            var optional = ctor.GetParameters().Skip(1).Where(p => p.Name != "flat").ToList();
            // SparseAdam has no flat mode (a sparse gradient cannot be a view of a flat buffer), so no flat argument.
            if (algorithm.RequiresSparseGradients) ctor.GetParameters().Should().NotContain(p => p.Name == "flat");
            else ctor.GetParameters()[^1].Name.Should().Be("flat", $"{name}'s constructors end with flat, as PyTorch's with foreach and fused");
            optional.Should().OnlyContain(p => p.HasDefaultValue, $"{name}({ctor.GetParameters()[0].ParameterType.Name}, ...) takes every hyperparameter as an optional argument");
            optional.Select(p => p.Name).Should().BeEquivalentTo(algorithm.Schema.SelectMany(h => ArgumentNames(h.Name)),
                $"{name}'s constructor over {ctor.GetParameters()[0].ParameterType.Name} takes every hyperparameter of the schema, by its name");
            foreach (var p in optional)
            {
                if (p.DefaultValue is null && (Nullable.GetUnderlyingType(p.ParameterType) is not null || !p.ParameterType.IsValueType))
                {
                    // A default derived from other arguments (LBFGS's max_eval: None means max_iter * 5 // 4, as in
                    // PyTorch), or one C# cannot write in a signature (Muon's ns_coefficients: null means PyTorch's
                    // three); with every argument at its default it must come out as the record's value.
                    var args = ctor.GetParameters().Select((q, i) => i == 0 ? FirstArgument(ctor) : q.DefaultValue).ToArray();
                    using var constructed = (Optimizer)ctor.Invoke(args);
                    TypedGroups.Options(constructed).Should().Equal(new[] { defaults }, $"{name}'s derived default of '{p.Name}'");
                    continue;
                }
                var (field, half) = FieldOf(p.Name!);
                var h = algorithm.Schema.Find(field)!;
                var value = p.DefaultValue is not null && h.ValueType.IsEnum ? Enum.ToObject(h.ValueType, p.DefaultValue) : p.DefaultValue;
                var expected = h.GetValue(defaults) is (double first, double second) ? (half == 0 ? first : second) : h.GetValue(defaults);
                value.Should().Be(expected, $"the default of {name}'s '{p.Name}' in the constructor over {ctor.GetParameters()[0].ParameterType.Name}");
            }
        }
    }

    [Theory]
    [MemberData(nameof(AlgorithmNames))]
    public void Creating_through_the_catalog_equals_calling_the_constructor(string name)
    {
        // AlgorithmInfo.Create with options by name is the constructor with those arguments.
        var algorithm = Algorithms.Get(name);
        foreach (var set in NonDefaultSets(algorithm))
        {
            var ctor = algorithm.OptimizerType.GetConstructors().Single(c => c.GetParameters()[0].ParameterType == typeof(IEnumerable<Parameter>));
            // A default derived from other arguments (LBFGS's max_eval = max_iter * 5 // 4 when null) is the constructor's
            // alone: the catalog starts from the options record, so the constructor gets the record's value unless the set names it.
            var args = ctor.GetParameters().Select((p, i) => i == 0 ? Params()
                : Argument(set, p.Name!) ?? (p.DefaultValue is null && (Nullable.GetUnderlyingType(p.ParameterType) is not null || !p.ParameterType.IsValueType)
                    ? algorithm.Schema.Find(p.Name!)!.GetValue(algorithm.DefaultOptions)
                    : p.DefaultValue)).ToArray();
            using var constructed = (Optimizer)ctor.Invoke(args);
            using var created = algorithm.Create(Params(), set);
            TypedGroups.Options(created).Should().Equal(TypedGroups.Options(constructed));
        }
    }

    // The constructor's first argument over Params(): a plain list, named parameters or one group.
    private static object FirstArgument(System.Reflection.ConstructorInfo ctor)
    {
        var type = ctor.GetParameters()[0].ParameterType;
        if (type == typeof(IEnumerable<Parameter>)) return Params();
        if (type == typeof(IEnumerable<(string name, Parameter parameter)>)) return Params().Select((p, i) => ($"p{i}", p)).ToArray();
        var spec = type.GetGenericArguments()[0];
        var group = Activator.CreateInstance(spec, Params(), null, null)!;
        var array = Array.CreateInstance(spec, 1);
        array.SetValue(group, 0);
        return array;
    }

    // TorchSharp's constructors take Rprop's pairs as two arguments each; the schema (PyTorch) as one pair.
    private static readonly Dictionary<string, (string First, string Second)> PairArguments = new()
    {
        ["etas"] = ("etaminus", "etaplus"),
        ["step_sizes"] = ("min_step", "max_step"),
    };

    private static IEnumerable<string> ArgumentNames(string field) =>
        PairArguments.TryGetValue(field, out var pair) ? new[] { pair.First, pair.Second } : new[] { field };

    private static (string Field, int Half) FieldOf(string argument)
    {
        foreach (var (field, (first, second)) in PairArguments)
        {
            if (argument == first) return (field, 0);
            if (argument == second) return (field, 1);
        }
        return (argument, -1);
    }

    private static object? Argument(IEnumerable<KeyValuePair<string, object?>> set, string argument)
    {
        var (field, half) = FieldOf(argument);
        foreach (var (key, value) in set)
        {
            if (key != field) continue;
            return value is (double first, double second) ? (half == 0 ? first : second) : value;
        }
        return null;
    }
}
