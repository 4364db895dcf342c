%% EUnit suite for Gun's raw protocol through gunmetal (gun_raw: one byte
%% stream, no stream reference). Mirrors the cases of Gun's raw_SUITE that
%% need no tunnel or upgrade (direct_raw_tcp, direct_raw_tls), and adds
%% what gunmetal gives raw on top: half-close with fin, shutdown, flow
%% (gen_tcp's {active, N}) and reconnects. Every server is started here on
%% 127.0.0.1 (gen_tcp / ssl); the TLS one uses the test server's
%% certificate (GM_CA's directory, from run_tests.sh).
-module(gunmetal_raw_tests).
-include_lib("eunit/include/eunit.hrl").

-export([init_origin/2, do_echo/3, answer_after_eof/3]).

%% ------------------------------------------------------------------ servers

%% An origin on 127.0.0.1: accepts connections (any number) and runs
%% Handler(Socket, Transport) on each in a process of its own. Returns
%% {ok, Pid, Port}; Pid forwards {server, Msg} from handlers to the test.
init_origin(Transport, Handler) ->
	{ok, _} = application:ensure_all_started(ssl),
	Parent = self(),
	Ref = make_ref(),
	Pid = spawn_link(fun() -> origin(Parent, Ref, Transport, Handler) end),
	receive {Ref, Port} -> {ok, Pid, Port} after 5000 -> error(origin_timeout) end.

origin(Parent, Ref, Transport, Handler) ->
	Opts = [binary, {active, false}, {reuseaddr, true}, {ip, {127, 0, 0, 1}}],
	{ok, L} = case Transport of
		%% exit_on_close false: a socket the client half-closed can still send.
		tcp -> gen_tcp:listen(0, [{exit_on_close, false}|Opts]);
		tls ->
			Dir = filename:dirname(os:getenv("GM_CA")),
			ssl:listen(0, Opts ++ [{certfile, filename:join(Dir, "cert.pem")},
				{keyfile, filename:join(Dir, "key.pem")}])
	end,
	{ok, {_, Port}} = case Transport of tcp -> inet:sockname(L); tls -> ssl:sockname(L) end,
	Parent ! {Ref, Port},
	accept_loop(Parent, Transport, L, Handler).

accept_loop(Parent, Transport, L, Handler) ->
	Res = case Transport of
		tcp -> gen_tcp:accept(L, 10000);
		tls ->
			case ssl:transport_accept(L, 10000) of
				{ok, S0} -> ssl:handshake(S0, 10000);
				E -> E
			end
	end,
	case Res of
		{ok, S} ->
			Mod = case Transport of tcp -> gen_tcp; tls -> ssl end,
			P = spawn(fun() ->
				receive go -> ok end,
				Parent ! {server, handshake_completed},
				Handler(Parent, S, Mod)
			end),
			ok = Mod:controlling_process(S, P),
			P ! go,
			accept_loop(Parent, Transport, L, Handler);
		{error, timeout} ->
			ok
	end.

receive_from(What) ->
	receive {server, What} -> ok after 5000 -> error({timeout, What}) end.

%% As Gun's raw_SUITE do_echo/3.
do_echo(Parent, S, Mod) ->
	case Mod:recv(S, 0, 5000) of
		{ok, Data} ->
			ok = Mod:send(S, Data),
			do_echo(Parent, S, Mod);
		{error, _} ->
			Mod:close(S)
	end.

%% Reads to the client's EOF (its half-close), then answers with the byte
%% count and closes: only a real half-close gets the answer.
answer_after_eof(Parent, S, Mod) ->
	answer_after_eof(Parent, S, Mod, 0).
answer_after_eof(Parent, S, Mod, N) ->
	case Mod:recv(S, 0, 5000) of
		{ok, Data} -> answer_after_eof(Parent, S, Mod, N + byte_size(Data));
		{error, closed} ->
			Parent ! {server, {eof, N}},
			ok = Mod:send(S, [<<"got ">>, integer_to_binary(N), <<" bytes">>]),
			Mod:close(S)
	end.

flush_conn(C) ->
	receive M when element(2, M) =:= C -> flush_conn(C) after 0 -> ok end.

%% ------------------------------------------------------------------ tests

direct_raw_tcp_test() ->
	do_direct_raw(tcp).

direct_raw_tls_test() ->
	do_direct_raw(tls).

%% Gun's raw_SUITE do_direct_raw/1.
do_direct_raw(OriginTransport) ->
	{ok, _OriginPid, OriginPort} = init_origin(OriginTransport, fun do_echo/3),
	{ok, ConnPid} = gunmetal:open("localhost", OriginPort, #{
		transport => OriginTransport,
		tls_opts => [{verify, verify_peer}, {cacertfile, os:getenv("GM_CA")}],
		protocols => [raw]
	}),
	{ok, raw} = gunmetal:await_up(ConnPid),
	receive_from(handshake_completed),
	%% When we take over the entire connection there is no stream reference.
	ok = gunmetal:data(ConnPid, undefined, nofin, <<"Hello world!">>),
	{data, nofin, <<"Hello world!">>} = gunmetal:await(ConnPid, undefined),
	#{
		transport := OriginTransport,
		protocol := raw,
		origin_scheme := _,
		origin_host := "localhost",
		origin_port := OriginPort,
		intermediaries := []
	} = gunmetal:info(ConnPid),
	gunmetal:close(ConnPid).

%% The messages are gun_raw's: gun_up with raw, then
%% {gun_data, ConnPid, undefined, nofin, Data}; iodata goes out as is.
raw_messages_test() ->
	{ok, _, Port} = init_origin(tcp, fun do_echo/3),
	{ok, C} = gunmetal:open("127.0.0.1", Port, #{protocols => [raw]}),
	receive {gun_up, C, raw} -> ok after 5000 -> error(no_up) end,
	ok = gunmetal:data(C, undefined, nofin, [<<"a">>, "bc", [$d]]),
	Got = recv_all(C, 4, <<>>),
	?assertEqual(<<"abcd">>, Got),
	%% A request on a raw connection fails as a stream error with a sentence.
	gunmetal:close(C).

recv_all(_C, N, Acc) when byte_size(Acc) >= N -> Acc;
recv_all(C, N, Acc) ->
	receive
		{gun_data, C, undefined, nofin, D} when is_binary(D) -> recv_all(C, N, <<Acc/binary, D/binary>>)
	after 5000 -> error({timeout, Acc})
	end.

%% fin shuts down the write side (gen_tcp shutdown(S, write)); reading goes
%% on: the server answers after our EOF, then its close is a gun_down.
half_close_fin_test() ->
	{ok, _, Port} = init_origin(tcp, fun answer_after_eof/3),
	{ok, C} = gunmetal:open("127.0.0.1", Port, #{protocols => [raw], retry => 0}),
	{ok, raw} = gunmetal:await_up(C),
	ok = gunmetal:data(C, undefined, nofin, binary:copy(<<"x">>, 100000)),
	ok = gunmetal:data(C, undefined, fin, <<"tail">>),
	receive_from({eof, 100004}),
	?assertEqual(<<"got 100004 bytes">>, recv_all(C, 16, <<>>)),
	receive {gun_down, C, raw, closed, []} -> ok after 5000 -> error(no_down) end,
	gunmetal:close(C),
	flush_conn(C).

%% gunmetal:shutdown on raw: FIN, the answer still arrives, and the
%% connection ends (no reconnect) when the peer closes.
shutdown_test() ->
	{ok, _, Port} = init_origin(tcp, fun answer_after_eof/3),
	{ok, C} = gunmetal:open("127.0.0.1", Port, #{protocols => [raw]}),
	{ok, raw} = gunmetal:await_up(C),
	MRef = monitor(process, C),
	ok = gunmetal:data(C, undefined, nofin, <<"12345">>),
	ok = gunmetal:shutdown(C),
	receive_from({eof, 5}),
	?assertEqual(<<"got 5 bytes">>, recv_all(C, 11, <<>>)),
	receive {'DOWN', MRef, process, C, _} -> ok after 5000 -> error(no_exit) end,
	receive {gun_up, C, _} -> error(reconnected) after 0 -> ok end,
	flush_conn(C).

%% raw_opts flow is gen_tcp's {active, N}: after N gun_data messages the
%% connection goes passive ({gun_notify, C, passive, _}, as tcp_passive);
%% update_flow(C, undefined, N) reads on.
flow_passive_test() ->
	{ok, _, Port} = init_origin(tcp, fun do_echo/3),
	{ok, C} = gunmetal:open("127.0.0.1", Port, #{protocols => [raw], raw_opts => #{flow => 1}}),
	{ok, raw} = gunmetal:await_up(C),
	ok = gunmetal:data(C, undefined, nofin, <<"one">>),
	{data, nofin, <<"one">>} = gunmetal:await(C, undefined),
	receive {gun_notify, C, passive, []} -> ok after 5000 -> error(no_passive) end,
	ok = gunmetal:data(C, undefined, nofin, <<"two">>),
	%% Passive: nothing is read until flow is added.
	receive {gun_data, C, _, _, _} = M -> error({data_while_passive, M}) after 300 -> ok end,
	ok = gunmetal:update_flow(C, undefined, 1),
	{data, nofin, <<"two">>} = gunmetal:await(C, undefined),
	gunmetal:close(C),
	flush_conn(C).

%% A peer close is a gun_down (raw, closed, no stream killed); with retry
%% the connection comes up again on a new byte stream, as in Gun.
reconnect_test() ->
	Once = fun(_Parent, S, Mod) ->
		{ok, D} = Mod:recv(S, 0, 5000),
		ok = Mod:send(S, D),
		Mod:close(S)
	end,
	{ok, _, Port} = init_origin(tcp, Once),
	{ok, C} = gunmetal:open("127.0.0.1", Port, #{protocols => [raw], retry => 1, retry_timeout => 10}),
	{ok, raw} = gunmetal:await_up(C),
	ok = gunmetal:data(C, undefined, nofin, <<"first">>),
	?assertEqual(<<"first">>, recv_all(C, 5, <<>>)),
	receive {gun_down, C, raw, closed, []} -> ok after 5000 -> error(no_down) end,
	{ok, raw} = gunmetal:await_up(C),
	ok = gunmetal:data(C, undefined, nofin, <<"second">>),
	?assertEqual(<<"second">>, recv_all(C, 6, <<>>)),
	gunmetal:close(C),
	flush_conn(C).

%% Options the engine does not take are refused, naming them (packet 3 is
%% no gen_tcp framing).
raw_refused_options_test() ->
	?assertMatch({error, {options, _}},
		gunmetal:open("127.0.0.1", 1, #{protocols => [raw], raw_opts => #{packet => 3}})),
	?assertMatch({error, {options, _}},
		gunmetal:open("127.0.0.1", 1, #{protocols => [raw, http]})).
