%% The Erlang runner of the scenario suite (tests/scenarios): an EUnit
%% generator with one test per scenario file, played through gunmetal's
%% Gun API (open/3, request/6, headers/5, data/4, cancel/2, update_flow/3,
%% ws_upgrade/3, ws_send/3, ping/1, set_owner/2, shutdown/1, close/1) and
%% Gun's messages, against the scenario server (tests/scenarios/server,
%% GM_SCENSERVER), compared by the rules of tests/scenarios/README.md (the
%% Go runner's, scenarios_test.go).
%%
%% Queues are processes: "main" is the test process's mailbox, any other is
%% a relay process whose mailbox holds what it gets until polled (so that
%% gunmetal:flush/1, run in it, finds its messages there). EXIT is the 'DOWN' of a
%% monitor on ConnPid, held by the owner's queue (moved on set_owner).
-module(gunmetal_scenarios_tests).
-include_lib("eunit/include/eunit.hrl").

-define(WAIT, 10000).

scenarios_test_() ->
	Root = filename:absname("../.."),
	Cases = filename:join([Root, "tests", "scenarios", "cases"]),
	Files = lists:sort(filelib:wildcard(filename:join(Cases, "*.json"))),
	{setup,
		fun() -> start_server(Cases) end,
		fun stop_server/1,
		fun({_Port, Info}) ->
			%% GM_SCEN_ONLY="a b": only those scenarios (a targeted run).
			Only = [list_to_binary(N) || N <- string:lexemes(os:getenv("GM_SCEN_ONLY", ""), " ,")],
			Scs = [Sc || F <- Files, Sc <- [decode_file(F)], Only =:= [] orelse lists:member(maps:get(<<"name">>, Sc), Only)],
			%% A scenario Erlang cannot express is no test at all (EUnit
			%% has no "skipped"): it is reported n/a, never counted as passed.
			[io:format(user, "scenario ~s: n/a: ~s~n", [maps:get(<<"name">>, Sc), Why])
				|| Sc <- Scs, Why <- [na(Sc)], Why =/= undefined],
			[{binary_to_list(maps:get(<<"name">>, Sc)), {timeout, 120, fun() -> run_scenario(Sc, Info) end}}
				|| Sc <- Scs, na(Sc) =:= undefined]
		end}.

na(Sc) -> maps:get(<<"erlang">>, maps:get(<<"not_applicable">>, Sc, #{}), undefined).

decode_file(F) ->
	{ok, B} = file:read_file(F),
	{V, _} = json_value(skip_ws(B)),
	V.

%% ---- the scenario server

start_server(Cases) ->
	Bin = case os:getenv("GM_SCENSERVER") of
		false -> error({not_set, "GM_SCENSERVER: the scenario server binary (run_tests.sh builds it)"});
		P -> P
	end,
	Port = open_port({spawn_executable, Bin}, [{args, ["-dir", Cases]}, {line, 65536}, binary, use_stdio]),
	receive
		{Port, {data, {eol, Line}}} ->
			{Info, _} = json_value(skip_ws(Line)),
			{Port, Info}
	after 20000 -> error(scenario_server_did_not_start)
	end.

stop_server({Port, _}) ->
	catch port_close(Port),
	ok.

%% ---- running one scenario

run_scenario(Sc, Info) ->
	Name = maps:get(<<"name">>, Sc),
	St0 = #{sc => Sc, info => Info, queues => #{<<"main">> => self()}, conns => #{},
		monitors => #{}, refs => #{}, authority => <<>>},
	put(scen_state, St0),
	try
		steps(maps:get(<<"steps">>, Sc), 0, St0)
	after
		cleanup(get(scen_state))
	end,
	io:format(user, "scenario ~s: passed~n", [Name]).

cleanup(St) ->
	[catch gunmetal:close(C) || C <- maps:values(maps:get(conns, St, #{}))],
	[R ! stop || {N, R} <- maps:to_list(maps:get(queues, St, #{})), N =/= <<"main">>],
	flush_all().

flush_all() ->
	receive
		M when is_tuple(M), element(1, M) =/= 'EXIT' -> flush_all()
	after 0 -> ok
	end.

steps([], _, St) ->
	%% Every event must have been expected.
	Left = [M || Q <- maps:keys(maps:get(queues, St)), M <- drain(Q, St)],
	case Left of
		[] -> St;
		_ -> fail("unexpected events after the last expect: ~s",
			[lists:join("; ", [render(unit(M, St), St) || M <- Left])])
	end;
steps([Step | Rest], I, St) ->
	put(scen_state, St), % for the cleanup, should the step fail
	case maps:get(<<"erlang">>, maps:get(<<"not_applicable">>, Step, #{}), undefined) of
		undefined ->
			St1 = case maps:is_key(<<"expect">>, Step) of
				true -> expect(I, Step, St);
				false -> do_call(I, Step, St)
			end,
			steps(Rest, I + 1, St1);
		Why ->
			io:format(user, "step ~b: n/a: ~s~n", [I, Why]),
			steps(Rest, I + 1, St)
	end.

fail(Fmt, Args) ->
	Msg = lists:flatten(io_lib:format(Fmt, Args)),
	io:format(user, "~s~n", [Msg]),
	erlang:error({scenario_failed, Msg}).

drain(QName, St) ->
	case poll(QName, 0, St) of
		timeout -> [];
		M -> [M | drain(QName, St)]
	end.

%% ---- queues

queue_pid(Name, St) ->
	Qs = maps:get(queues, St),
	case Qs of
		#{Name := P} -> {P, St};
		_ ->
			Self = self(),
			P = spawn_link(fun() -> relay(Self, Name) end),
			{P, St#{queues => Qs#{Name => P}}}
	end.

%% Only control messages are taken here; events wait in the mailbox for a
%% '$poll' (or a '$flush', which runs gunmetal:flush/1 in this process).
relay(Parent, Name) ->
	receive
		stop -> ok;
		{'$monitor', Pid, From} ->
			MRef = erlang:monitor(process, Pid),
			From ! {'$monitored', MRef},
			relay(Parent, Name);
		{'$poll', From, Timeout} ->
			From ! {'$polled', Name, relay_take(Timeout)},
			relay(Parent, Name);
		{'$flush', From, Target} ->
			ok = gunmetal:flush(Target),
			From ! {'$flushed', Name},
			relay(Parent, Name)
	end.

relay_take(Timeout) ->
	receive
		M -> case is_event(M) of true -> M; false -> relay_take(Timeout) end
	after Timeout -> timeout
	end.

is_event(M) when is_tuple(M), tuple_size(M) >= 2 ->
	T = element(1, M),
	lists:member(T, [gun_up, gun_down, gun_inform, gun_response, gun_data, gun_trailers, gun_push,
		gun_error, gun_upgrade, gun_ws, gun_notify, gun_tunnel_up, gun_sse, 'DOWN']);
is_event(_) -> false.

poll(<<"main">>, Timeout, _St) ->
	receive
		M when element(1, M) =/= 'EXIT' ->
			case is_event(M) of true -> M; false -> poll(<<"main">>, Timeout, _St) end
	after Timeout -> timeout
	end;
poll(Name, Timeout, St) ->
	maps:get(Name, maps:get(queues, St)) ! {'$poll', self(), Timeout},
	receive {'$polled', Name, M} -> M end.

%% ---- calls

s(Key, Map) -> maps:get(Key, Map, undefined).
s(Key, Map, Def) -> maps:get(Key, Map, Def).

name_or(Key, Map, Def) -> case s(Key, Map) of undefined -> Def; V -> V end.

bind(undefined, _, St) -> St;
bind(Name, Ref, St) -> St#{refs => (maps:get(refs, St))#{Name => Ref}}.

ref(<<"-">>, _) -> undefined; % the raw protocol's stream: Gun's undefined ref
ref(Name, St) ->
	case maps:get(refs, St) of
		#{Name := R} -> R;
		_ -> fail("ref ~s is not bound", [Name])
	end.

conn(Step, St) ->
	N = name_or(<<"conn">>, Step, <<"c">>),
	case maps:get(conns, St) of
		#{N := C} -> C;
		_ -> fail("no connection ~s", [N])
	end.

scenario_port(St) ->
	Sc = maps:get(sc, St),
	Info = maps:get(info, St),
	case maps:get(<<"server">>, Sc) of
		<<"http">> -> maps:get(<<"http">>, Info);
		<<"https">> -> maps:get(<<"https">>, Info);
		<<"script">> -> maps:get(maps:get(<<"name">>, Sc), maps:get(<<"scripts">>, Info));
		<<"closed">> ->
			{ok, L} = gen_tcp:listen(0, [{ip, {127, 0, 0, 1}}]),
			{ok, P} = inet:port(L),
			gen_tcp:close(L),
			P
	end.

%% Gun's options from the scenario's JSON: keys atoms, strings atoms
%% (protocols => [http2], transport => tcp).
%% A file's path stays a string; "{ca}" in it is the test CA's file.
gun_opts(M) when is_map(M) -> maps:from_list([{binary_to_atom(K), gun_opt(K, V)} || {K, V} <- maps:to_list(M)]);
gun_opts(L) when is_list(L) -> [gun_opts(V) || V <- L];
gun_opts(B) when is_binary(B) -> binary_to_atom(B);
gun_opts(V) -> V.

gun_opt(K, V) when K =:= <<"cacertfile">>; K =:= <<"certfile">>; K =:= <<"keyfile">> ->
	Ca = maps:get(<<"ca">>, maps:get(info, get(scen_state))),
	binary_to_list(binary:replace(V, <<"{ca}">>, Ca, [global]));
%% Gun's tcp_opts and tls_opts are proplists (gen_tcp's, ssl's options).
gun_opt(K, M) when (K =:= <<"tls_opts">> orelse K =:= <<"tcp_opts">>), is_map(M) ->
	[{binary_to_atom(K1), gun_opt(K1, V)} || {K1, V} <- maps:to_list(M)];
gun_opt(_, V) -> gun_opts(V).

headers(Step) -> [{N, V} || [N, V] <- s(<<"headers">>, Step, [])].

do_call(I, Step, St) ->
	Want = name_or(<<"error">>, Step, <<"ok">>),
	{Got, St1} = try call(maps:get(<<"call">>, Step), Step, St) of
		{ok, S} -> {<<"ok">>, S};
		{error, Class, S} -> {Class, S}
	catch
		error:{badarg, _} -> {<<"einval">>, St};
		error:badarg -> {<<"einval">>, St}
	end,
	case Got =:= Want of
		true -> St1;
		false -> fail("step ~b (~s): got ~s, want ~s", [I, maps:get(<<"call">>, Step), Got, Want])
	end.

call(<<"open">>, Step, St) ->
	Port = scenario_port(St),
	Sc = maps:get(sc, St),
	Opts = gun_opts(s(<<"options">>, Step, s(<<"options">>, Sc, #{}))),
	{Q, St1} = queue_pid(name_or(<<"queue">>, Step, <<"main">>), St),
	Auth = iolist_to_binary(io_lib:format("127.0.0.1:~b", [Port])),
	Res = case Q =:= self() of
		true -> gunmetal:open("127.0.0.1", Port, Opts);
		false -> gunmetal:open("127.0.0.1", Port, Opts#{owner => Q}) % not in the suite yet
	end,
	case Res of
		{ok, C} ->
			MRef = monitor_from(Q, C),
			N = name_or(<<"conn">>, Step, <<"c">>),
			{ok, St1#{conns => (maps:get(conns, St1))#{N => C}, authority => Auth,
				monitors => (maps:get(monitors, St1))#{C => {Q, MRef}}}};
		{error, _} ->
			{error, <<"eoption">>, St1}
	end;
call(<<"request">>, Step, St) ->
	C = conn(Step, St),
	{Opts, St1} = req_opts(Step, St),
	Method = name_or(<<"method">>, Step, <<"GET">>),
	Path = s(<<"path">>, Step, <<>>),
	Ref = case s(<<"stream">>, Step, false) of
		true -> gunmetal:headers(C, Method, Path, headers(Step), Opts);
		false -> gunmetal:request(C, Method, Path, headers(Step), s(<<"body">>, Step, <<>>), Opts)
	end,
	{ok, bind(s(<<"ref">>, Step), Ref, St1)};
call(<<"data">>, Step, St) ->
	Fin = case s(<<"fin">>, Step, false) of true -> fin; false -> nofin end,
	ok = gunmetal:data(conn(Step, St), ref(s(<<"ref">>, Step), St), Fin, s(<<"data">>, Step, <<>>)),
	{ok, St};
call(<<"cancel">>, Step, St) ->
	ok = gunmetal:cancel(conn(Step, St), ref(s(<<"ref">>, Step), St)),
	{ok, St};
call(<<"update_flow">>, Step, St) ->
	ok = gunmetal:update_flow(conn(Step, St), ref(s(<<"ref">>, Step), St), s(<<"n">>, Step, 0)),
	{ok, St};
call(<<"ws_upgrade">>, Step, St) ->
	C = conn(Step, St),
	Path = s(<<"path">>, Step, <<>>),
	%% ws_upgrade/4's options replace the connection's ws_opts (as in Gun):
	%% only with reply_to (scenarios that say it set no other ws_opts).
	{Ref, St1} = case s(<<"reply_to">>, Step) of
		undefined -> {gunmetal:ws_upgrade(C, Path, headers(Step)), St};
		QN -> {Q, S1} = queue_pid(QN, St), {gunmetal:ws_upgrade(C, Path, headers(Step), #{reply_to => Q}), S1}
	end,
	{ok, bind(s(<<"ref">>, Step), Ref, St1)};
%% Gun's flush/1 returns ok, not a count: "dropped" is not checked here (the
%% end-of-scenario check shows the events gone).
call(<<"flush">>, Step, St) ->
	Target = case s(<<"ref">>, Step) of undefined -> conn(Step, St); R -> ref(R, St) end,
	QN = name_or(<<"queue">>, Step, <<"main">>),
	{Q, St1} = queue_pid(QN, St),
	case Q =:= self() of
		true -> ok = gunmetal:flush(Target);
		false ->
			Q ! {'$flush', self(), Target},
			receive {'$flushed', QN} -> ok after 5000 -> fail("relay did not flush", []) end
	end,
	{ok, St1};
call(<<"ws_send">>, Step, St) ->
	Frames = [case maps:get(<<"op">>, F) of
		<<"close">> -> {close, s(<<"code">>, F, 1000), s(<<"data">>, F, <<>>)};
		Op -> {binary_to_atom(Op), s(<<"data">>, F, <<>>)}
	end || F <- s(<<"frames">>, Step, [])],
	ok = gunmetal:ws_send(conn(Step, St), ref(s(<<"ref">>, Step), St), Frames),
	{ok, St};
call(<<"ping">>, Step, St) ->
	case gunmetal:ping(conn(Step, St)) of
		{error, unsupported} -> {error, <<"eunsupported">>, St};
		Ref -> {ok, bind(s(<<"ref">>, Step), Ref, St)}
	end;
call(<<"set_owner">>, Step, St) ->
	C = conn(Step, St),
	{Q, St1} = queue_pid(name_or(<<"queue">>, Step, <<"main">>), St),
	ok = gunmetal:set_owner(C, Q),
	%% The EXIT goes to the owner: the monitor moves with it.
	Mons = maps:get(monitors, St1),
	{_, Old} = maps:get(C, Mons),
	erlang:demonitor(Old, [flush]),
	{ok, St1#{monitors => Mons#{C => {Q, monitor_from(Q, C)}}}};
call(<<"shutdown">>, Step, St) ->
	ok = gunmetal:shutdown(conn(Step, St)),
	{ok, St};
call(<<"close">>, Step, St) ->
	ok = gunmetal:close(conn(Step, St)),
	{ok, St};
call(Other, _, _) ->
	fail("unknown call ~s", [Other]).

monitor_from(Q, C) when Q =:= self() -> erlang:monitor(process, C);
monitor_from(Q, C) ->
	Q ! {'$monitor', C, self()},
	receive {'$monitored', MRef} -> MRef after 5000 -> fail("relay did not monitor", []) end.

req_opts(Step, St) ->
	O0 = case s(<<"flow">>, Step) of undefined -> #{}; F -> #{flow => F} end,
	case s(<<"reply_to">>, Step) of
		undefined -> {O0, St};
		QN -> {Q, St1} = queue_pid(QN, St), {O0#{reply_to => Q}, St1}
	end.

%% ---- events as units

reason(undefined) -> <<>>;
reason(A) when is_atom(A) -> atom_to_binary(A);
reason(B) when is_binary(B) -> B;
reason({A, B}) when is_atom(A) -> <<(atom_to_binary(A))/binary, ": ", (reason(B))/binary>>;
reason(L) when is_list(L) ->
	case unicode:characters_to_binary(L) of
		B when is_binary(B) -> B;
		_ -> iolist_to_binary(io_lib:format("~p", [L]))
	end;
reason(T) -> iolist_to_binary(io_lib:format("~p", [T])).

exit_reason(shutdown) -> <<"shutdown">>;
exit_reason(normal) -> <<"normal">>;
exit_reason({shutdown, R}) -> reason(R);
exit_reason(R) -> reason(R).

bin(B) when is_binary(B) -> B;
bin(L) when is_list(L) -> iolist_to_binary(L);
bin(A) when is_atom(A) -> atom_to_binary(A).

u(Kind, Conn, Ref, Extra) ->
	maps:merge(#{kind => Kind, conn => Conn, ref => Ref, new_ref => undefined, fin => false, status => 0,
		protocol => <<>>, reason => <<>>, method => <<>>, uri => <<>>, op => <<>>, code => 0,
		headers => [], data => <<>>, killed => []}, Extra).

fin(fin) -> true;
fin(nofin) -> false.

unit({gun_up, C, P}, _) -> u(<<"up">>, C, undefined, #{protocol => bin(P)});
unit({gun_down, C, P, R, K}, _) -> u(<<"down">>, C, undefined, #{protocol => bin(P), reason => reason(R), killed => K});
unit({'DOWN', _, process, C, noproc}, _) ->
	%% ConnPid was gone before the monitor was set (a refused connect is
	%% fast): gunmetal keeps the reason it exited with, as its await* use.
	R = case gunmetal_nif:exit_reason(C) of {ok, X} -> X; error -> noproc end,
	u(<<"exit">>, C, undefined, #{reason => exit_reason(R)});
unit({'DOWN', _, process, C, R}, _) -> u(<<"exit">>, C, undefined, #{reason => exit_reason(R)});
unit({gun_inform, C, Ref, S, H}, _) -> u(<<"inform">>, C, Ref, #{status => S, headers => H});
unit({gun_response, C, Ref, F, S, H}, _) -> u(<<"response">>, C, Ref, #{fin => fin(F), status => S, headers => H});
unit({gun_data, C, Ref, F, D}, _) -> u(<<"data">>, C, Ref, #{fin => fin(F), data => D});
unit({gun_trailers, C, Ref, H}, _) -> u(<<"trailers">>, C, Ref, #{headers => H});
unit({gun_push, C, Ref, NR, M, URI, H}, _) ->
	u(<<"push">>, C, Ref, #{new_ref => NR, method => bin(M), uri => bin(URI), headers => H});
unit({gun_error, C, Ref, R}, _) -> u(<<"error">>, C, Ref, #{reason => reason(R)});
unit({gun_error, C, R}, _) -> u(<<"error">>, C, undefined, #{reason => reason(R)});
unit({gun_upgrade, C, Ref, [P | _], H}, _) -> u(<<"upgrade">>, C, Ref, #{protocol => bin(P), headers => H});
unit({gun_ws, C, Ref, Frame}, _) ->
	{Op, Code, D} = case Frame of
		close -> {<<"close">>, 0, <<>>};
		{close, Cd, Dt} -> {<<"close">>, Cd, Dt};
		{O, Dt} -> {bin(O), 0, Dt}
	end,
	u(<<"ws">>, C, Ref, #{op => Op, code => Code, data => D});
unit({gun_notify, C, ping_ack, Ref}, _) -> u(<<"notify">>, C, Ref, #{reason => <<"ping_ack">>});
unit({gun_notify, C, What, _}, _) -> u(<<"notify">>, C, undefined, #{reason => reason(What)});
unit({gun_tunnel_up, C, Ref, P}, _) -> u(<<"tunnel_up">>, C, Ref, #{protocol => bin(P)});
%% Gun's gun_sse: the event map's keys (but data) are the headers, as the
%% C ABI's GM_EV_SSE carries them; fin is the body's end.
unit({gun_sse, C, Ref, fin}, _) -> u(<<"sse">>, C, Ref, #{fin => true});
unit({gun_sse, C, Ref, Ev}, _) when is_map(Ev) ->
	u(<<"sse">>, C, Ref, #{headers => [{atom_to_binary(K), bin(V)} || {K, V} <- lists:sort(maps:to_list(Ev)), K =/= data],
		data => bin(maps:get(data, Ev, <<>>))}).

%% ---- expect blocks

closed(Units, Exp, I) ->
	U = lists:nth(I, Units),
	case maps:get(kind, U) =/= <<"data">> orelse maps:get(fin, U) orelse I < length(Units) of
		true -> true;
		false when I =< length(Exp) ->
			E = lists:nth(I, Exp),
			maps:is_key(<<"size">>, E) andalso s(<<"fin">>, E) =:= false
				andalso byte_size(maps:get(data, U)) >= maps:get(<<"size">>, E);
		false -> false
	end.

add(Units, Exp, U) ->
	N = length(Units),
	case N > 0 andalso maps:get(kind, U) =:= <<"data">> of
		true ->
			Last = lists:last(Units),
			case maps:get(kind, Last) =:= <<"data">> andalso maps:get(ref, Last) =:= maps:get(ref, U)
					andalso not closed(Units, Exp, N) of
				true ->
					lists:droplast(Units) ++ [Last#{data => <<(maps:get(data, Last))/binary, (maps:get(data, U))/binary>>,
						fin => maps:get(fin, U)}];
				false -> Units ++ [U]
			end;
		false -> Units ++ [U]
	end.

complete(Units, Exp) ->
	length(Units) > length(Exp) orelse
		(length(Units) =:= length(Exp) andalso (Units =:= [] orelse closed(Units, Exp, length(Units)))).

expect(I, Step, St) ->
	Q = name_or(<<"queue">>, Step, <<"main">>),
	Exp = maps:get(<<"expect">>, Step),
	Any = s(<<"any_order">>, Step, false),
	G0 = case Any of
		true ->
			lists:foldl(fun(E, Acc) ->
				K = case s(<<"ref">>, E) of undefined -> undefined; N -> ref(N, St) end,
				{Es, Us} = maps:get(K, Acc, {[], []}),
				Acc#{K => {Es ++ [E], Us}}
			end, #{}, Exp);
		false -> #{all => {Exp, []}}
	end,
	Order = case Any of
		true -> lists:usort([case s(<<"ref">>, E) of undefined -> undefined; N -> ref(N, St) end || E <- Exp]);
		false -> [all]
	end,
	Deadline = erlang:monotonic_time(millisecond) + ?WAIT,
	{Groups, TimedOut} = collect(G0, Q, Any, Deadline, St),
	Keys = Order ++ [K || K <- maps:keys(Groups), not lists:member(K, Order)],
	{Ok, Lines, St1} = lists:foldl(fun(K, {Ok0, L0, S0}) ->
		{Es, Us} = maps:get(K, Groups),
		Head = case Any of true -> [io_lib:format("  ref ~s:", [ref_name(K, S0)])]; false -> [] end,
		{Ok1, L1, S1} = diff(Es, Us, S0),
		{Ok0 andalso Ok1, L0 ++ Head ++ L1, S1}
	end, {not TimedOut, [], St}, Keys),
	case Ok of
		true -> St1;
		false ->
			Why = case TimedOut of true -> "incomplete after 10 s"; false -> "mismatch" end,
			fail("step ~b: expect block: ~s (! marks a difference)~n~s", [I, Why, lists:join("\n", Lines)])
	end.

collect(Groups, Q, Any, Deadline, St) ->
	case lists:all(fun({Es, Us}) -> complete(Us, Es) end, maps:values(Groups)) of
		true -> {Groups, false};
		false ->
			Left = max(0, Deadline - erlang:monotonic_time(millisecond)),
			case poll(Q, Left, St) of
				timeout -> {Groups, true};
				M ->
					U = unit(M, St),
					K = case Any of true -> maps:get(ref, U); false -> all end,
					{Es, Us} = maps:get(K, Groups, {[], []}),
					collect(Groups#{K => {Es, add(Us, Es, U)}}, Q, Any, Deadline, St)
			end
	end.

diff(Es, Us, St) ->
	N = max(length(Es), length(Us)),
	lists:foldl(fun(J, {Ok, L, S}) ->
		E = case J =< length(Es) of true -> lists:nth(J, Es); false -> none end,
		U = case J =< length(Us) of true -> lists:nth(J, Us); false -> none end,
		{Same, S1} = case E =/= none andalso U =/= none of
			true -> match(E, U, S);
			false -> {false, S}
		end,
		ES = case E of none -> "(nothing)"; _ -> render_exp(E) end,
		US = case U of none -> "(nothing)"; _ -> render(U, S1) end,
		Mark = case Same of true -> "  "; false -> "! " end,
		{Ok andalso Same, L ++ [io_lib:format("  ~sexpected ~-50s got ~s", [Mark, ES, US])], S1}
	end, {true, [], St}, lists:seq(1, N)).

match_ref(undefined, _, St) -> {true, St};
match_ref(<<"-">>, R, St) -> {R =:= undefined, St};
match_ref(Name, R, St) ->
	Refs = maps:get(refs, St),
	case Refs of
		#{Name := B} -> {B =:= R, St};
		_ ->
			case R =:= undefined orelse lists:member(R, maps:values(Refs)) of
				true -> {false, St};
				false -> {true, bind(Name, R, St)} % a ref the server made (push)
			end
	end.

match(E, U, St) ->
	{R1, St1} = match_ref(s(<<"ref">>, E), maps:get(ref, U), St),
	{R2, St2} = match_ref(s(<<"new_ref">>, E), maps:get(new_ref, U), St1),
	Auth = maps:get(authority, St),
	Checks = [
		{<<"conn">>, fun(V) -> maps:get(V, maps:get(conns, St), none) =:= maps:get(conn, U) end},
		{<<"fin">>, fun(V) -> V =:= maps:get(fin, U) end},
		{<<"status">>, fun(V) -> V =:= maps:get(status, U) end},
		{<<"protocol">>, fun(V) -> V =:= maps:get(protocol, U) end},
		{<<"reason">>, fun(V) -> binary:longest_common_prefix([V, maps:get(reason, U)]) =:= byte_size(V) end},
		{<<"method">>, fun(V) -> V =:= maps:get(method, U) end},
		{<<"uri">>, fun(V) -> binary:replace(V, <<"{authority}">>, Auth) =:= maps:get(uri, U) end},
		{<<"op">>, fun(V) -> V =:= maps:get(op, U) end},
		{<<"code">>, fun(V) -> V =:= maps:get(code, U) end},
		{<<"headers">>, fun(V) -> lists:all(fun({K, X}) -> lists:member({K, X}, maps:get(headers, U)) end, maps:to_list(V)) end},
		{<<"size">>, fun(V) -> V =:= byte_size(maps:get(data, U)) end},
		{<<"body">>, fun(V) -> V =:= maps:get(data, U) end},
		{<<"sha256">>, fun(V) -> V =:= hex(crypto:hash(sha256, maps:get(data, U))) end},
		{<<"killed">>, fun(V) -> lists:sort([maps:get(N, maps:get(refs, St2), none) || N <- V]) =:= lists:sort(maps:get(killed, U)) end}
	],
	Same = maps:get(<<"ev">>, E) =:= maps:get(kind, U) andalso R1 andalso R2
		andalso lists:all(fun({K, F}) -> not maps:is_key(K, E) orelse F(maps:get(K, E)) end, Checks),
	{Same, St2}.

hex(B) -> list_to_binary([io_lib:format("~2.16.0b", [X]) || <<X>> <= B]).

ref_name(undefined, _) -> "-";
ref_name(all, _) -> "-";
ref_name(R, St) ->
	case [N || {N, X} <- maps:to_list(maps:get(refs, St)), X =:= R] of
		[N | _] -> N;
		[] -> io_lib:format("~p", [R])
	end.

render_exp(E) ->
	Parts = [maps:get(<<"ev">>, E)]
		++ [V || K <- [<<"ref">>], V <- [s(K, E)], V =/= undefined]
		++ [["new=", V] || V <- [s(<<"new_ref">>, E)], V =/= undefined]
		++ [case V of true -> "fin"; false -> "nofin" end || V <- [s(<<"fin">>, E)], V =/= undefined]
		++ [io_lib:format("~s=~0p", [K, V]) || K <- [<<"status">>, <<"protocol">>, <<"op">>, <<"code">>, <<"reason">>,
			<<"method">>, <<"uri">>, <<"size">>, <<"body">>, <<"sha256">>, <<"killed">>], V <- [s(K, E)], V =/= undefined]
		++ [[K, "=", V] || {K, V} <- lists:sort(maps:to_list(s(<<"headers">>, E, #{})))],
	lists:flatten(io_lib:format("~s", [lists:join(" ", Parts)])).

render(U, St) ->
	Kind = maps:get(kind, U),
	Parts = [Kind]
		++ [ref_name(R, St) || R <- [maps:get(ref, U)], R =/= undefined]
		++ [["new=", ref_name(R, St)] || R <- [maps:get(new_ref, U)], R =/= undefined]
		++ [case maps:get(fin, U) of true -> "fin"; false -> "nofin" end
			|| lists:member(Kind, [<<"response">>, <<"data">>, <<"inform">>, <<"trailers">>, <<"sse">>])]
		++ [integer_to_list(S) || S <- [maps:get(status, U)], S =/= 0]
		++ [V || K <- [protocol, op], V <- [maps:get(K, U)], V =/= <<>>]
		++ [io_lib:format("code=~b", [maps:get(code, U)]) || maps:get(op, U) =:= <<"close">>]
		++ [io_lib:format("reason=~p", [R]) || R <- [maps:get(reason, U)], R =/= <<>>]
		++ [[maps:get(method, U), " ", maps:get(uri, U)] || maps:get(method, U) =/= <<>>]
		++ [["killed=[", lists:join(",", [ref_name(K, St) || K <- maps:get(killed, U)]), "]"] || Kind =:= <<"down">>]
		++ [[K, "=", V] || {K, V} <- maps:get(headers, U), binary:part(K, 0, min(4, byte_size(K))) =/= <<"date">>]
		++ [io_lib:format("size=~b ~0p sha256=~s", [byte_size(D), binary:part(D, 0, min(32, byte_size(D))),
			binary:part(hex(crypto:hash(sha256, D)), 0, 12)])
			|| lists:member(Kind, [<<"data">>, <<"ws">>, <<"sse">>]), D <- [maps:get(data, U)]],
	lists:flatten(io_lib:format("~s", [lists:join(" ", Parts)])).

%% ---- a small JSON reader (OTP 25 has no json module): objects are maps
%% with binary keys, strings binaries (UTF-8), numbers integers or floats.

skip_ws(<<C, R/binary>>) when C =:= $\s; C =:= $\t; C =:= $\n; C =:= $\r -> skip_ws(R);
skip_ws(B) -> B.

json_value(<<${, R/binary>>) -> json_object(skip_ws(R), #{});
json_value(<<$[, R/binary>>) -> json_array(skip_ws(R), []);
json_value(<<$", R/binary>>) -> json_string(R, <<>>);
json_value(<<"true", R/binary>>) -> {true, R};
json_value(<<"false", R/binary>>) -> {false, R};
json_value(<<"null", R/binary>>) -> {null, R};
json_value(B) -> json_number(B, []).

json_object(<<$}, R/binary>>, M) -> {M, R};
json_object(<<$", R/binary>>, M) ->
	{K, R1} = json_string(R, <<>>),
	<<$:, R2/binary>> = skip_ws(R1),
	{V, R3} = json_value(skip_ws(R2)),
	case skip_ws(R3) of
		<<$,, R4/binary>> -> json_object(skip_ws(R4), M#{K => V});
		<<$}, R4/binary>> -> {M#{K => V}, R4}
	end.

json_array(<<$], R/binary>>, L) -> {lists:reverse(L), R};
json_array(B, L) ->
	{V, R} = json_value(B),
	case skip_ws(R) of
		<<$,, R1/binary>> -> json_array(skip_ws(R1), [V | L]);
		<<$], R1/binary>> -> {lists:reverse([V | L]), R1}
	end.

json_string(<<$", R/binary>>, Acc) -> {Acc, R};
json_string(<<$\\, $u, H:4/binary, R/binary>>, Acc) ->
	C = binary_to_integer(H, 16),
	case C >= 16#D800 andalso C =< 16#DBFF of
		true ->
			<<$\\, $u, L:4/binary, R1/binary>> = R,
			Lo = binary_to_integer(L, 16),
			json_string(R1, <<Acc/binary, (((C - 16#D800) bsl 10) + (Lo - 16#DC00) + 16#10000)/utf8>>);
		false -> json_string(R, <<Acc/binary, C/utf8>>)
	end;
json_string(<<$\\, E, R/binary>>, Acc) ->
	C = case E of $n -> $\n; $r -> $\r; $t -> $\t; $b -> $\b; $f -> $\f; _ -> E end,
	json_string(R, <<Acc/binary, C>>);
json_string(<<C, R/binary>>, Acc) -> json_string(R, <<Acc/binary, C>>).

json_number(<<C, R/binary>>, Acc) when (C >= $0 andalso C =< $9); C =:= $-; C =:= $.; C =:= $e; C =:= $E; C =:= $+ ->
	json_number(R, [C | Acc]);
json_number(R, Acc) ->
	S = lists:reverse(Acc),
	V = try list_to_integer(S) catch error:badarg -> list_to_float(S) end,
	{V, R}.
