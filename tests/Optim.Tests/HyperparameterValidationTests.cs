using System;
using System.Collections.Generic;
using System.Linq;
using System.Reflection;
using System.Runtime.ExceptionServices;
using Optim.Tests.Support;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch.optim;

namespace Optim.Tests;

/// <summary>
/// One table: every numeric hyperparameter of every algorithm, each with every kind of bad value (NaN, ±infinity,
/// negative, out of range), through every way a value gets in: the constructor, a param-group override, and a change
/// at run time (group options, and the scheduler interfaces). Each must be an <see cref="ArgumentException"/> naming the
/// argument and quoting the value as Python prints it, and a rejected change must leave the options as they were.
/// </summary>
public class HyperparameterValidationTests
{
    private enum Rule
    {
        /// <summary>Finite and ≥ 0 (PyTorch's <c>not 0.0 &lt;= x</c>, plus finiteness).</summary>
        NonNegative,

        /// <summary>Finite, in [0, 1) (Adam's betas, as PyTorch).</summary>
        HalfOpenUnit,

        /// <summary>Finite, in [0, 1] (momentum, dampening, alpha; stricter than PyTorch, which has no upper bound).</summary>
        ClosedUnit,

        /// <summary>Any finite value (ASGD's t0, which PyTorch does not check).</summary>
        Finite,
        /// <summary>Finite, in (0, 1) (Rprop's etaminus: PyTorch's <c>0 &lt; etas[0] &lt; 1</c>).</summary>
        OpenUnit,

        /// <summary>Finite, above 1 (Rprop's etaplus: PyTorch's <c>1 &lt; etas[1]</c>).</summary>
        AboveOne,

        /// <summary>An integer of at least 1 (LBFGS's max_iter, max_eval, history_size, which PyTorch does not check).</summary>
        PositiveInteger,

        /// <summary>Finite and ≤ 0 (Adafactor's beta2_decay: PyTorch's <c>not 0.0 &gt;= beta2_decay</c>).</summary>
        NonPositive,

        /// <summary>Finite and ≥ 1 (Adafactor's d: PyTorch's <c>not 1.0 &lt;= d</c>).</summary>
        AtLeastOne,

        /// <summary>Finite and &gt; 0 (SparseAdam's lr and eps: PyTorch's <c>not 0.0 &lt; x</c>).</summary>
        Positive,

        /// <summary>An integer in [0, 100) (Muon's ns_steps: PyTorch refuses 100 or more, at the step).</summary>
        BelowHundred,
    }

    // Constructor arguments that are one half of a PyTorch pair: the pair's name, the index, and the other half's default.
    // The message quotes both halves ("Invalid eta values: nan, 1.2") and names the pair.
    private static readonly Dictionary<(string Algorithm, string Argument), (string Pair, int Index, double Other)> Halves = new()
    {
        [("Rprop", "etaminus")] = ("etas", 0, 1.2),
        [("Rprop", "etaplus")] = ("etas", 1, 0.5),
        [("Rprop", "min_step")] = ("step_sizes", 0, 50),
        [("Rprop", "max_step")] = ("step_sizes", 1, 1e-6),
    };

    // The name the exception carries and the start of its message, for a bad value quoted as `text`.
    private static (string ParamName, string Prefix) Expected(string algorithm, string argument, string text, string message)
    {
        if (!Halves.TryGetValue((algorithm, argument), out var half)) return (argument, $"{message}: {text}");
        var other = Validation.Check.Python(half.Other);
        return (half.Pair, half.Index == 0 ? $"{message}: {text}, {other}" : $"{message}: {other}, {text}");
    }

    // The hyperparameter as the schema holds it: a pair where the argument is half of one.
    private static KeyValuePair<string, object?>[] HyperFor(string algorithm, string argument, double value) =>
        Halves.TryGetValue((algorithm, argument), out var half)
            ? new[] { new KeyValuePair<string, object?>(half.Pair, half.Index == 0 ? (value, half.Other) : (half.Other, value)) }
            : new[] { new KeyValuePair<string, object?>(argument, Typed(algorithm, argument, value)) };

    // The table's value as the schema declares the hyperparameter: a double, or an integer (LBFGS's counts).
    private static object Typed(string algorithm, string argument, double value) =>
        Algorithms.Get(algorithm).Schema.Find(argument)?.Type switch
        {
            HyperparameterType.Long => (object)(long)value,
            HyperparameterType.Int => (int)value,
            _ => value,
        };

    // (algorithm, constructor argument, PyTorch's message prefix, rule). The coverage test below keeps this complete.
    private static readonly (string Algorithm, string Argument, string Message, Rule Rule)[] Arguments =
    {
        ("SGD", "lr", "Invalid learning rate", Rule.NonNegative),
        ("SGD", "momentum", "Invalid momentum value", Rule.ClosedUnit),
        ("SGD", "dampening", "Invalid dampening value", Rule.ClosedUnit),
        ("SGD", "weight_decay", "Invalid weight_decay value", Rule.NonNegative),
        ("SGDMomentumNesterov", "lr", "Invalid learning rate", Rule.NonNegative),
        ("SGDMomentumNesterov", "momentum", "Invalid momentum value", Rule.ClosedUnit),
        ("SGDMomentumNesterov", "dampening", "Invalid dampening value", Rule.ClosedUnit),
        ("SGDMomentumNesterov", "weight_decay", "Invalid weight_decay value", Rule.NonNegative),
        ("Adam", "lr", "Invalid learning rate", Rule.NonNegative),
        ("Adam", "beta1", "Invalid beta parameter at index 0", Rule.HalfOpenUnit),
        ("Adam", "beta2", "Invalid beta parameter at index 1", Rule.HalfOpenUnit),
        ("Adam", "eps", "Invalid epsilon value", Rule.NonNegative),
        ("Adam", "weight_decay", "Invalid weight_decay value", Rule.NonNegative),
        ("AdamW", "lr", "Invalid learning rate", Rule.NonNegative),
        ("AdamW", "beta1", "Invalid beta parameter at index 0", Rule.HalfOpenUnit),
        ("AdamW", "beta2", "Invalid beta parameter at index 1", Rule.HalfOpenUnit),
        ("AdamW", "eps", "Invalid epsilon value", Rule.NonNegative),
        ("AdamW", "weight_decay", "Invalid weight_decay value", Rule.NonNegative),
        ("Adagrad", "lr", "Invalid learning rate", Rule.NonNegative),
        ("Adagrad", "lr_decay", "Invalid lr_decay value", Rule.NonNegative),
        ("Adagrad", "weight_decay", "Invalid weight_decay value", Rule.NonNegative),
        ("Adagrad", "initial_accumulator_value", "Invalid initial_accumulator_value value", Rule.NonNegative),
        ("Adagrad", "eps", "Invalid epsilon value", Rule.NonNegative),
        ("RMSprop", "lr", "Invalid learning rate", Rule.NonNegative),
        ("RMSprop", "alpha", "Invalid alpha value", Rule.ClosedUnit),
        ("RMSprop", "eps", "Invalid epsilon value", Rule.NonNegative),
        ("RMSprop", "weight_decay", "Invalid weight_decay value", Rule.NonNegative),
        ("RMSprop", "momentum", "Invalid momentum value", Rule.ClosedUnit),
        ("Adadelta", "lr", "Invalid learning rate", Rule.NonNegative),
        ("Adadelta", "rho", "Invalid rho value", Rule.ClosedUnit),
        ("Adadelta", "eps", "Invalid epsilon value", Rule.NonNegative),
        ("Adadelta", "weight_decay", "Invalid weight_decay value", Rule.NonNegative),
        ("Adamax", "lr", "Invalid learning rate", Rule.NonNegative),
        ("Adamax", "beta1", "Invalid beta parameter at index 0", Rule.HalfOpenUnit),
        ("Adamax", "beta2", "Invalid beta parameter at index 1", Rule.HalfOpenUnit),
        ("Adamax", "eps", "Invalid epsilon value", Rule.NonNegative),
        ("Adamax", "weight_decay", "Invalid weight_decay value", Rule.NonNegative),
        ("ASGD", "lr", "Invalid learning rate", Rule.NonNegative),
        ("ASGD", "lambd", "Invalid lambd value", Rule.NonNegative),
        ("ASGD", "alpha", "Invalid alpha value", Rule.NonNegative),
        ("ASGD", "t0", "Invalid t0 value", Rule.Finite),
        ("ASGD", "weight_decay", "Invalid weight_decay value", Rule.NonNegative),
        ("NAdam", "lr", "Invalid learning rate", Rule.NonNegative),
        ("NAdam", "beta1", "Invalid beta parameter at index 0", Rule.HalfOpenUnit),
        ("NAdam", "beta2", "Invalid beta parameter at index 1", Rule.HalfOpenUnit),
        ("NAdam", "eps", "Invalid epsilon value", Rule.NonNegative),
        ("NAdam", "weight_decay", "Invalid weight_decay value", Rule.NonNegative),
        ("NAdam", "momentum_decay", "Invalid momentum_decay value", Rule.NonNegative),
        ("RAdam", "lr", "Invalid learning rate", Rule.NonNegative),
        ("RAdam", "beta1", "Invalid beta parameter at index 0", Rule.HalfOpenUnit),
        ("RAdam", "beta2", "Invalid beta parameter at index 1", Rule.HalfOpenUnit),
        ("RAdam", "eps", "Invalid epsilon value", Rule.NonNegative),
        ("RAdam", "weight_decay", "Invalid weight_decay value", Rule.NonNegative),
        ("Rprop", "lr", "Invalid learning rate", Rule.NonNegative),
        ("Rprop", "etaminus", "Invalid eta values", Rule.OpenUnit),
        ("Rprop", "etaplus", "Invalid eta values", Rule.AboveOne),
        // PyTorch does not check step_sizes; we reject what cannot be a step size.
        ("Rprop", "min_step", "Invalid step_sizes values", Rule.NonNegative),
        ("Rprop", "max_step", "Invalid step_sizes values", Rule.NonNegative),
        // PyTorch checks only LBFGS's lr; we reject counts below 1 and tolerances that are not finite.
        ("LBFGS", "lr", "Invalid learning rate", Rule.NonNegative),
        ("LBFGS", "max_iter", "Invalid max_iter", Rule.PositiveInteger),
        ("LBFGS", "max_eval", "Invalid max_eval", Rule.PositiveInteger),
        ("LBFGS", "tolerance_grad", "Invalid tolerance_grad", Rule.Finite),
        ("LBFGS", "tolerance_change", "Invalid tolerance_change", Rule.Finite),
        ("LBFGS", "history_size", "Invalid history_size", Rule.PositiveInteger),
        // Adafactor: PyTorch's messages but lr's, which keeps the library's "Invalid learning rate".
        ("Adafactor", "lr", "Invalid learning rate", Rule.NonNegative),
        ("Adafactor", "beta2_decay", "beta2_decay should be <= 0 but is", Rule.NonPositive),
        ("Adafactor", "eps1", "epsilon1 should be >= 0 but is", Rule.NonNegative),
        ("Adafactor", "eps2", "epsilon2 should be >= 0 but is", Rule.NonNegative),
        ("Adafactor", "d", "Clipping threshold d should be >= 1 but is", Rule.AtLeastOne),
        ("Adafactor", "weight_decay", "weight_decay should be >= 0 but is", Rule.NonNegative),
        // SparseAdam: PyTorch's messages; lr and eps must be positive.
        ("SparseAdam", "lr", "Invalid learning rate", Rule.Positive),
        ("SparseAdam", "beta1", "Invalid beta parameter at index 0", Rule.HalfOpenUnit),
        ("SparseAdam", "beta2", "Invalid beta parameter at index 1", Rule.HalfOpenUnit),
        ("SparseAdam", "eps", "Invalid epsilon value", Rule.Positive),
        // Muon: PyTorch's messages; it checks neither eps nor a negative ns_steps, which are refused here.
        ("Muon", "lr", "Learning rate should be >= 0 but is", Rule.NonNegative),
        ("Muon", "momentum", "momentum should be >= 0 but is", Rule.NonNegative),
        ("Muon", "weight_decay", "weight decay should be >= 0 but is", Rule.NonNegative),
        ("Muon", "eps", "Invalid epsilon value", Rule.NonNegative),
        ("Muon", "ns_steps", "Number of steps must be less than 100 for computational efficiency (and at least 0), but is", Rule.BelowHundred),
    };

    // The bad values of each rule, with the text Python's str(float) gives them (what the message must quote).
    private static IEnumerable<(double Value, string Text)> BadValues(Rule rule)
    {
        if (rule == Rule.BelowHundred)
        {
            yield return (-1, "-1");
            yield return (100, "100");
            yield return (1e6, "1000000");
            yield break;
        }
        if (rule == Rule.PositiveInteger)
        {
            // Integers print as integers.
            yield return (0, "0");
            yield return (-1, "-1");
            yield return (-1e12, "-1000000000000");
            yield break;
        }
        yield return (double.NaN, "nan");
        yield return (double.PositiveInfinity, "inf");
        yield return (double.NegativeInfinity, "-inf");
        if (rule == Rule.Finite) yield break;
        if (rule == Rule.NonPositive)
        {
            yield return (0.1, "0.1");
            yield return (1e-5, "1e-05");
            yield break;
        }
        yield return (-0.1, "-0.1");
        yield return (-1e-5, "-1e-05");
        if (rule == Rule.Positive) yield return (0.0, "0.0");
        if (rule == Rule.AtLeastOne)
        {
            yield return (0.0, "0.0");
            yield return (0.5, "0.5");
            yield break;
        }
        if (rule is Rule.HalfOpenUnit or Rule.OpenUnit or Rule.AboveOne) yield return (1.0, "1.0");
        if (rule is Rule.HalfOpenUnit or Rule.ClosedUnit or Rule.OpenUnit) yield return (1.5, "1.5");
        if (rule is Rule.OpenUnit or Rule.AboveOne) yield return (0.0, "0.0");
        if (rule == Rule.AboveOne) yield return (0.5, "0.5");
    }

    // Values at the edge of each rule that must be accepted (PyTorch accepts eps = 0, lr = 0, beta = 0).
    private static IEnumerable<double> EdgeValues(Rule rule) => rule switch
    {
        Rule.NonNegative => new[] { 0.0, -0.0, 1e30 },
        Rule.HalfOpenUnit => new[] { 0.0, Math.BitDecrement(1.0) },
        Rule.Finite => new[] { -1e30, 0.0, 1e30 },
        Rule.OpenUnit => new[] { double.Epsilon, Math.BitDecrement(1.0) },
        Rule.PositiveInteger => new[] { 1.0, 1e6 },
        Rule.AboveOne => new[] { Math.BitIncrement(1.0), 1e30 },
        Rule.NonPositive => new[] { 0.0, -0.0, -1e30 },
        Rule.AtLeastOne => new[] { 1.0, 1e30 },
        Rule.Positive => new[] { double.Epsilon, 1e30 },
        Rule.BelowHundred => new[] { 0.0, 99.0 },
        _ => new[] { 0.0, 1.0 },
    };

    public static TheoryData<string, string, double, string, string> Rows()
    {
        var rows = new TheoryData<string, string, double, string, string>();
        foreach (var (algorithm, argument, message, rule) in Arguments)
            foreach (var (value, text) in BadValues(rule)) rows.Add(algorithm, argument, value, text, message);
        return rows;
    }

    public static TheoryData<string, string, double> Edges()
    {
        var rows = new TheoryData<string, string, double>();
        foreach (var (algorithm, argument, _, rule) in Arguments)
            foreach (var value in EdgeValues(rule)) rows.Add(algorithm, argument, value);
        return rows;
    }

    public static TheoryData<string> AlgorithmNames() => Algorithms.NameData();

    // Matrices, which every algorithm takes (Muon nothing else).
    private static Parameter[] Params() => new[] { new Parameter(torch.ones(1, 2)), new Parameter(torch.ones(1, 3)) };

    private static Type AlgorithmType(string algorithm) => Algorithms.Get(algorithm).OptimizerType;

    // The constructor over a plain parameter list, called with every argument at its default but the given ones.
    private static Optimizer Construct(string algorithm, IEnumerable<Parameter> ps, params (string Name, object Value)[] arguments)
    {
        var ctor = AlgorithmType(algorithm).GetConstructors()
            .Single(c => c.GetParameters()[0].ParameterType == typeof(IEnumerable<Parameter>));
        var args = ctor.GetParameters()
            .Select((p, i) => i == 0 ? ps : Convert(arguments.FirstOrDefault(a => a.Name == p.Name).Value, p.ParameterType) ?? p.DefaultValue)
            .ToArray();
        try
        {
            return (Optimizer)ctor.Invoke(args);
        }
        catch (TargetInvocationException e) when (e.InnerException is not null)
        {
            ExceptionDispatchInfo.Capture(e.InnerException).Throw();
            throw;
        }
    }

    // The table's doubles as integer arguments where the constructor takes integers (LBFGS's max_iter, max_eval: long?).
    private static object? Convert(object? value, Type type) =>
        value is double d && (Nullable.GetUnderlyingType(type) ?? type) is var t && (t == typeof(long) || t == typeof(int))
            ? (t == typeof(long) ? (object)(long)d : (int)d)
            : value;

    private static readonly Type[] NumericArgumentTypes = { typeof(double), typeof(double?), typeof(long), typeof(long?), typeof(int), typeof(int?) };

    // A one-group optimizer whose group overrides `argument` (PyTorch's {"params": ..., "lr": nan}).
    private static Optimizer WithGroupOverride(string algorithm, IEnumerable<Parameter> ps, string argument, double value) =>
        Algorithms.Get(algorithm).Create(ps, HyperFor(algorithm, argument, value));

    // group.Options = group.Options with { <argument> = value }, on the optimizer's first group.
    private static void AssignOnFirstGroup(Optimizer opt, string argument, double value) =>
        TypedGroups.ChangeOptions(opt, 0, o => o.WithHyperparameters(HyperFor(opt.GetType().Name, argument, value)));

    // What a rejected change must leave as it was: every group's hyperparameters and initial_lr.
    private static string OptionsOf(Optimizer opt) => string.Join(" | ", opt.StateDict().ParamGroups
        .Select(g => string.Join(",", g.Hyperparameters.Select(h => $"{h.Key}={h.Value}")) + $";initial_lr={g.InitialLr}"));

    private static void ShouldBeRejected(Action act, string argument, string text, string message) =>
        ShouldBeRejected(act, "", argument, text, message);

    private static void ShouldBeRejected(Action act, string algorithm, string argument, string text, string message)
    {
        var (name, prefix) = Expected(algorithm, argument, text, message);
        act.Should().Throw<ArgumentException>()
            .Where(e => e.ParamName == name, $"the exception names '{name}'")
            .Where(e => e.Message.StartsWith(prefix, StringComparison.Ordinal), $"the message starts \"{prefix}\"");
    }

    [Fact]
    public void The_table_covers_every_double_int_and_long_hyperparameter_of_every_schema()
    {
        var numeric = new[] { HyperparameterType.Double, HyperparameterType.Int, HyperparameterType.Long, HyperparameterType.DoublePair };
        foreach (var algorithm in AlgorithmCatalog.All)
        {
            // A pair is covered through its two halves (the constructor's arguments).
            Arguments.Where(a => a.Algorithm == algorithm.Name)
                .Select(a => Halves.TryGetValue((a.Algorithm, a.Argument), out var half) ? half.Pair : a.Argument).Distinct()
                .Should().BeEquivalentTo(
                algorithm.Schema.Where(h => numeric.Contains(h.Type)).Select(h => h.Name),
                $"every number {algorithm}'s schema declares has rows in the table, and the table names no other");
        }
        Arguments.Select(a => a.Algorithm).Distinct().Should().BeSubsetOf(Algorithms.Names, "every row names an algorithm of the catalog");
    }

    [Fact]
    public void The_table_covers_every_numeric_argument_of_every_constructor()
    {
        foreach (var algorithm in Algorithms.Names)
        {
            var constructors = AlgorithmType(algorithm).GetConstructors();
            constructors.Where(c => !TakesTorchSharpGroups(c)).Should().HaveCount(3, $"{algorithm} has a plain, a named and a grouped constructor");
            foreach (var ctor in constructors)
            {
                var numeric = ctor.GetParameters().Where(p => NumericArgumentTypes.Contains(p.ParameterType)).Select(p => p.Name);
                numeric.Should().BeEquivalentTo(Arguments.Where(a => a.Algorithm == algorithm).Select(a => a.Argument),
                    $"every numeric argument of {algorithm}'s constructors has rows in the table");
            }
        }
    }

    // A constructor over TorchSharp's typed parameter groups (Adadelta, Adamax, ASGD: TorchSharp's training tests build them).
    private static bool TakesTorchSharpGroups(ConstructorInfo ctor) =>
        ctor.GetParameters()[0].ParameterType.GetGenericArguments() is [{ IsGenericType: true } element]
        && element.GetGenericTypeDefinition() == typeof(TorchSharp.Modules.ParamGroup<>);

    [Theory]
    [MemberData(nameof(Rows))]
    public void The_constructor_rejects_it(string algorithm, string argument, double value, string text, string message) =>
        ShouldBeRejected(() => Construct(algorithm, Params(), (argument, value)), algorithm, argument, text, message);

    [Theory]
    [MemberData(nameof(Rows))]
    public void A_param_group_override_rejects_it(string algorithm, string argument, double value, string text, string message) =>
        ShouldBeRejected(() => WithGroupOverride(algorithm, Params(), argument, value), algorithm, argument, text, message);

    [Theory]
    [MemberData(nameof(Rows))]
    public void Changing_a_group_at_run_time_rejects_it_and_changes_nothing(string algorithm, string argument, double value, string text, string message)
    {
        using var opt = Construct(algorithm, Params());
        var before = OptionsOf(opt);
        ShouldBeRejected(() => AssignOnFirstGroup(opt, argument, value), algorithm, argument, text, message);
        OptionsOf(opt).Should().Be(before);
    }

    [Theory]
    [MemberData(nameof(Rows))]
    public void The_scheduler_interfaces_reject_it_and_change_nothing(string algorithm, string argument, double value, string text, string message)
    {
        // Two groups, so an optimizer-level setter (IMomentum, IBetas on the optimizer) must change neither.
        var ps = Params();
        using var opt = Construct(algorithm, ps);
        if (!Algorithms.Get(algorithm).SingleGroupOnly) AddSecondGroup(opt); // LBFGS takes one group
        var before = OptionsOf(opt);
        var group = opt.ParamGroups.First();
        var setters = new List<Action>();
        switch (argument)
        {
            case "lr":
                setters.Add(() => group.LearningRate = value);
                break;
            case "momentum":
                setters.Add(() => ((IMomentum)group).Momentum = value);
                setters.Add(() => ((IMomentum)opt).Momentum = value);
                break;
            case "beta1":
                setters.Add(() => ((IBetas)group).Betas = (value, 0.999));
                setters.Add(() => ((IBetas)opt).Betas = (value, 0.999));
                break;
            case "beta2":
                setters.Add(() => ((IBetas)group).Betas = (0.9, value));
                setters.Add(() => ((IBetas)opt).Betas = (0.9, value));
                break;
            default:
                return; // no scheduler interface carries this hyperparameter
        }
        foreach (var set in setters)
        {
            ShouldBeRejected(set, algorithm, argument, text, message);
            OptionsOf(opt).Should().Be(before);
        }
    }

    private static void AddSecondGroup(Optimizer opt) =>
        TypedGroups.Add(opt, new[] { new Parameter(torch.ones(1, 4)) }, g => g with { Lr = 0.5 });

    [Theory]
    [MemberData(nameof(Edges))]
    public void Values_at_the_edge_of_each_range_are_accepted(string algorithm, string argument, double value)
    {
        // Nesterov needs momentum > 0 and no dampening; switch it off so the edges of momentum and dampening stand alone.
        using var opt = Construct(algorithm, Params(), (argument, value), ("nesterov", false));
        if (Halves.TryGetValue((algorithm, argument), out var half))
            opt.StateDict().ParamGroups[0][half.Pair].Should().Be(half.Index == 0 ? (value, half.Other) : (half.Other, value));
        else
            opt.StateDict().ParamGroups[0][argument].Should().Be(Typed(algorithm, argument, value));
        AssignOnFirstGroup(opt, argument, value);
    }

    [Fact]
    public void Typed_group_overrides_are_validated_like_constructor_arguments()
    {
        var cases = new (Action Act, string Argument, string Text)[]
        {
            (() => _ = new Adam(new[] { new ParamGroupSpec<AdamOptions>(Params(), o => o with { Beta1 = double.NaN }) }), "beta1", "nan"),
            (() => _ = new AdamW(new[] { new ParamGroupSpec<AdamOptions>(Params(), o => o with { Beta2 = 1.0 }) }), "beta2", "1.0"),
            (() => _ = new SGD(new[] { new ParamGroupSpec<SGDOptions>(Params(), o => o with { Momentum = -0.1 }) }), "momentum", "-0.1"),
            (() => _ = new SGDMomentumNesterov(new[] { new ParamGroupSpec<SGDMomentumNesterovOptions>(Params(), o => o with { WeightDecay = double.NegativeInfinity }) }), "weight_decay", "-inf"),
            (() => _ = new Adagrad(new[] { new ParamGroupSpec<AdagradOptions>(Params(), o => o with { InitialAccumulatorValue = -0.1 }) }), "initial_accumulator_value", "-0.1"),
            (() => _ = new Adagrad(new[] { new ParamGroupSpec<AdagradOptions>(Params(), o => o with { LrDecay = double.PositiveInfinity }) }), "lr_decay", "inf"),
            (() => _ = new RMSprop(new[] { new ParamGroupSpec<RMSpropOptions>(Params(), o => o with { Alpha = 1.5 }) }), "alpha", "1.5"),
            (() => _ = new RMSprop(new[] { new ParamGroupSpec<RMSpropOptions>(Params(), o => o with { Eps = double.NaN }) }), "eps", "nan"),
        };
        foreach (var (act, argument, text) in cases)
            act.Should().Throw<ArgumentException>().Where(e => e.ParamName == argument && e.Message.Contains($": {text} ", StringComparison.Ordinal));
    }

    [Fact]
    public void A_typed_run_time_change_is_rejected_and_changes_nothing()
    {
        using var opt = new Adam(Params(), lr: 0.1);
        var group = opt.ParamGroups[0];
        var before = group.Options;
        var act = () => group.Options = group.Options with { Beta1 = double.NaN };
        act.Should().Throw<ArgumentOutOfRangeException>().Where(e => e.ParamName == "beta1");
        group.Options.Should().BeSameAs(before);
    }

    [Theory]
    [MemberData(nameof(AlgorithmNames))]
    public void An_undefined_implementation_is_rejected(string algorithm)
    {
        var info = Algorithms.Get(algorithm);
        if (!info.HasImplementations)
        {
            // LBFGS has no implementation to choose: no constructor takes one, its schema has none, and naming one is an
            // unknown hyperparameter.
            info.OptimizerType.GetConstructors().SelectMany(c => c.GetParameters()).Should().NotContain(p => p.Name == "implementation");
            info.Schema.Find("implementation").Should().BeNull();
            var named = () => info.Create(Params(), new[] { new KeyValuePair<string, object?>("implementation", Implementation.Foreach) });
            named.Should().Throw<ArgumentException>();
            return;
        }
        var act = () => Construct(algorithm, Params(), ("implementation", (Implementation)42));
        act.Should().Throw<ArgumentOutOfRangeException>().Where(e => e.ParamName == "implementation" && e.Message.Contains("42", StringComparison.Ordinal));
    }

    [Theory]
    [InlineData(double.NaN, "nan")]
    [InlineData(double.PositiveInfinity, "inf")]
    [InlineData(-0.1, "-0.1")]
    public void A_groups_initial_learning_rate_is_validated_too(double value, string text)
    {
        // Schedulers derive every learning rate from it, so a bad one would only surface later, as a bad lr.
        using var opt = new SGD(Params(), 0.1);
        Action act = () => opt.ParamGroups[0].InitialLearningRate = value;
        ShouldBeRejected(act, "initial_lr", text, "Invalid initial learning rate");
        opt.ParamGroups[0].InitialLearningRate.Should().Be(0.1);

        var saved = opt.StateDict();
        var bad = saved with { ParamGroups = new[] { saved.ParamGroups[0] with { InitialLr = value } } };
        var load = () => opt.LoadStateDict(bad);
        ShouldBeRejected(load, "initial_lr", text, "Invalid initial learning rate");
        opt.ParamGroups[0].InitialLearningRate.Should().Be(0.1);
    }

    [Fact]
    public void An_initial_accumulator_value_the_parameters_dtype_cannot_hold_is_rejected_and_adds_nothing()
    {
        // ATen refuses to fill a float32 tensor with 1e300 (PyTorch raises at construction too); it must surface as an
        // ArgumentException naming the hyperparameter, and a group added later must not be half-added.
        Action construct = () => _ = new Adagrad(Params(), initial_accumulator_value: 1e300);
        ShouldBeRejected(construct, "initial_accumulator_value", "1e+300", "Invalid initial_accumulator_value value");

        var a = new Parameter(torch.ones(2));
        using var opt = new Adagrad(new[] { a }, 0.1);
        var before = StateSnapshot.Of(opt, new[] { a });
        var fits = new Parameter(torch.ones(2, dtype: torch.ScalarType.Float64));
        var overflows = new Parameter(torch.ones(2, dtype: torch.ScalarType.Float16));
        var add = () => opt.AddParamGroup(new(new[] { fits, overflows }, o => o with { InitialAccumulatorValue = 1e5 }));
        ShouldBeRejected(add, "initial_accumulator_value", "100000.0", "Invalid initial_accumulator_value value");
        opt.ParamGroups.Should().HaveCount(1);
        opt.State.Keys.Should().Equal(a);
        StateSnapshot.Of(opt, new[] { a }).Should().Equal(before);

        opt.AddParamGroup(new(new[] { fits }, o => o with { InitialAccumulatorValue = 1e300 }));
        opt.State[fits]["sum"].data<double>().ToArray().Should().Equal(1e300, 1e300);
    }

    [Fact]
    public void A_rejected_change_of_every_group_at_once_changes_no_group()
    {
        // The value suits the first group but breaks the second's Nesterov rule: neither group may change.
        using var opt = new SGD(new[]
        {
            new ParamGroupSpec<SGDOptions>(new[] { new Parameter(torch.ones(2)) }),
            new ParamGroupSpec<SGDOptions>(new[] { new Parameter(torch.ones(2)) }, o => o with { Nesterov = true }),
        }, 0.1, momentum: 0.9);
        var before = opt.ParamGroups.Select(g => g.Options).ToList();
        var act = () => opt.Momentum = 0;
        act.Should().Throw<ArgumentException>().Where(e => e.ParamName == "nesterov");
        opt.ParamGroups.Select(g => g.Options).Should().Equal(before);
    }
}
