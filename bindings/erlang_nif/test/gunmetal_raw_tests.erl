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

%% ------------------------------------------------ issue 11: more of gen_tcp

%% raw_opts packet (gen_tcp's {packet, P}): data/4 sends one message with
%% its prefix (the server reads it with gen_tcp's own {packet, P}); messages
%% the server writes byte by byte, then two in one write, each arrive as one
%% gun_data.
packet_framing_byte_by_byte_test_() ->
	{timeout, 60, fun() -> [do_packet(P) || P <- [1, 2, 4, line]] end}.

do_packet(P) ->
	Msgs = case P of
		line -> [<<"hello\n">>, <<"a longer line, with bytes \0\1\2\n">>, <<"\n">>];
		_ -> [<<"hello">>, <<>>, binary:copy(<<"xyz">>, 80)]
	end,
	Frame = fun(M) when P =:= line -> M; (M) -> <<(byte_size(M)):(8 * P), M/binary>> end,
	Handler = fun(Parent, S, Mod) ->
		ok = inet:setopts(S, [{packet, P}, {nodelay, true}]),
		{ok, Got} = Mod:recv(S, 0, 5000),
		Parent ! {server, {got, Got}},
		ok = inet:setopts(S, [{packet, raw}]),
		[ok = Mod:send(S, [B]) || M <- Msgs, <<B>> <= Frame(M)],
		ok = Mod:send(S, [Frame(M) || M <- Msgs]),
		receive_from_test_done(S, Mod)
	end,
	{ok, _, Port} = init_origin(tcp, Handler),
	{ok, C} = gunmetal:open("127.0.0.1", Port, #{protocols => [raw], retry => 0, raw_opts => #{packet => P}}),
	{ok, raw} = gunmetal:await_up(C),
	Ping = case P of line -> <<"ping\n">>; _ -> <<"ping\n\0">> end,
	ok = gunmetal:data(C, undefined, nofin, Ping),
	receive_from({got, Ping}),
	Want = Msgs ++ Msgs,
	Got = [receive {gun_data, C, undefined, nofin, D} -> D after 5000 -> error({no_data, P}) end || _ <- Want],
	?assertEqual({P, Want}, {P, Got}),
	gunmetal:close(C),
	flush_conn(C).

receive_from_test_done(S, Mod) ->
	_ = Mod:recv(S, 0, 10000),
	Mod:close(S).

%% tcp_opts as gen_tcp's, seen by the peer: ip binds the local address (the
%% server sees 127.0.0.2), linger {true, 0} makes close an RST (the server's
%% recv fails with econnreset; without it the close is a FIN: closed).
sockopts_behaviour_test() ->
	Handler = fun(Parent, S, Mod) ->
		ok = inet:setopts(S, [{show_econnreset, true}]), % an RST is not a plain close
		{ok, {Addr, _}} = inet:peername(S),
		Parent ! {server, {peer, Addr}},
		Parent ! {server, {recv, Mod:recv(S, 0, 10000)}}
	end,
	{ok, _, Port} = init_origin(tcp, Handler),
	{ok, C1} = gunmetal:open("127.0.0.1", Port, #{protocols => [raw], retry => 0,
		tcp_opts => [{ip, {127, 0, 0, 2}}, {linger, {true, 0}}]}),
	{ok, raw} = gunmetal:await_up(C1),
	receive_from({peer, {127, 0, 0, 2}}),
	gunmetal:close(C1),
	receive_from({recv, {error, econnreset}}),
	{ok, C2} = gunmetal:open("127.0.0.1", Port, #{protocols => [raw], retry => 0,
		tcp_opts => [{linger, {false, 0}}]}),
	{ok, raw} = gunmetal:await_up(C2),
	receive_from({peer, {127, 0, 0, 1}}),
	gunmetal:close(C2),
	receive_from({recv, {error, closed}}),
	%% What gunmetal cannot do is refused, naming it.
	?assertMatch({error, {options, _}},
		gunmetal:open("127.0.0.1", Port, #{protocols => [raw], tcp_opts => [{buffer, 1000}]})),
	flush_conn(C1), flush_conn(C2).

%% gunmetal:open_fd/2, gen_tcp's {fd, Fd}: a socket the test connected
%% itself (the socket module, which gives its fd), TCP and Unix; the engine
%% runs on a duplicate. The test's socket is closed only once the
%% connection ended: Erlang's close sets the shared descriptor to blocking
%% mode (see open_fd/2). Raw echo, then HTTP on the test server.
open_fd_test_() ->
	{timeout, 30, fun do_open_fd/0}.

do_open_fd() ->
	{ok, _, Port} = init_origin(tcp, fun do_echo/3),
	{ok, S} = socket:open(inet, stream, tcp),
	ok = socket:connect(S, #{family => inet, addr => {127, 0, 0, 1}, port => Port}),
	{ok, Fd} = socket:getopt(S, {otp, fd}),
	{ok, C} = gunmetal:open_fd(Fd, #{protocols => [raw]}),
	{ok, raw} = gunmetal:await_up(C),
	ok = gunmetal:data(C, undefined, nofin, <<"over an adopted socket">>),
	?assertEqual(<<"over an adopted socket">>, recv_all(C, 22, <<>>)),
	gunmetal:close(C),
	ok = socket:close(S),
	flush_conn(C),
	%% A Unix stream socket, connected to a gen_tcp listener on a path.
	Path = filename:join("/tmp", "gm-erl-fd-" ++ os:getpid() ++ ".sock"),
	file:delete(Path),
	{ok, L} = gen_tcp:listen(0, [binary, {active, false}, {ifaddr, {local, Path}}]),
	{ok, U} = socket:open(local, stream, default),
	ok = socket:connect(U, #{family => local, path => Path}),
	{ok, A} = gen_tcp:accept(L, 5000),
	{ok, UFd} = socket:getopt(U, {otp, fd}),
	{ok, CU} = gunmetal:open_fd(UFd, #{protocols => [raw]}),
	{ok, raw} = gunmetal:await_up(CU),
	ok = gunmetal:data(CU, undefined, nofin, <<"unix">>),
	{ok, <<"unix">>} = gen_tcp:recv(A, 4, 5000),
	ok = gen_tcp:send(A, <<"back">>),
	?assertEqual(<<"back">>, recv_all(CU, 4, <<>>)),
	%% The peer's close: gun_down, then the exit (no reconnect).
	MRef = monitor(process, CU),
	ok = gen_tcp:close(A),
	receive {gun_down, CU, raw, closed, []} -> ok after 5000 -> error(no_down) end,
	receive {'DOWN', MRef, process, CU, _} -> ok after 5000 -> error(no_exit) end,
	ok = socket:close(U),
	gen_tcp:close(L),
	file:delete(Path),
	%% HTTP on an adopted socket to the test server.
	{ok, H} = socket:open(inet, stream, tcp),
	ok = socket:connect(H, #{family => inet, addr => {127, 0, 0, 1},
		port => list_to_integer(os:getenv("GM_HTTP_PORT"))}),
	{ok, HFd} = socket:getopt(H, {otp, fd}),
	{ok, CH} = gunmetal:open_fd(HFd, #{}),
	{ok, http} = gunmetal:await_up(CH),
	Ref = gunmetal:get(CH, "/bytes/10"),
	{response, _, 200, _} = gunmetal:await(CH, Ref),
	gunmetal:close(CH),
	ok = socket:close(H),
	flush_conn(CH),
	%% Refused: retry (no reconnect is possible), an fd that is no socket.
	{ok, S2} = socket:open(inet, stream, tcp),
	ok = socket:connect(S2, #{family => inet, addr => {127, 0, 0, 1}, port => Port}),
	{ok, Fd2} = socket:getopt(S2, {otp, fd}),
	?assertMatch({error, {options, _}}, gunmetal:open_fd(Fd2, #{retry => 3})),
	{ok, F} = file:open(Path ++ ".file", [write, raw]),
	file:close(F),
	?assertMatch({error, _}, gunmetal:open_fd(999999, #{})),
	socket:close(S2),
	file:delete(Path ++ ".file").

%% tcp_opts send_timeout on raw, as gen_tcp's: the server does not read, so
%% data/4 of 16 MiB cannot complete: {gun_error, C, undefined, {timeout,
%% RestData}} says what did not go out. With send_timeout_close false the
%% connection stays up and the server gets exactly the rest's complement,
%% then what follows; with the default (true) it goes down.
send_timeout_test_() ->
	{timeout, 60, fun() -> do_send_timeout(false), do_send_timeout(true) end}.

do_send_timeout(Close) ->
	Handler = fun(Parent, S, Mod) ->
		Parent ! {server, {handler, self()}},
		receive read -> ok end,
		Parent ! {server, {all, read_to_eof(S, Mod, [])}}
	end,
	{ok, _, Port} = init_origin(tcp, Handler),
	TcpOpts = [{send_timeout, 1500}, {sndbuf, 4096}] ++
		case Close of false -> [{send_timeout_close, false}]; true -> [] end,
	{ok, C} = gunmetal:open("127.0.0.1", Port, #{protocols => [raw], retry => 0, tcp_opts => TcpOpts}),
	{ok, raw} = gunmetal:await_up(C),
	HPid = receive {server, {handler, P}} -> P after 5000 -> error(no_handler) end,
	Big = << <<(I rem 251)>> || I <- lists:seq(1, 16 bsl 20) >>,
	ok = gunmetal:data(C, undefined, nofin, Big),
	Rest = receive {gun_error, C, undefined, {timeout, R}} -> R after 10000 -> error(no_timeout) end,
	Sent = byte_size(Big) - byte_size(Rest),
	?assert(Sent > 0 andalso Sent < byte_size(Big)),
	?assertEqual(Rest, binary:part(Big, Sent, byte_size(Rest))),
	case Close of
		true ->
			receive {gun_down, C, raw, _, []} -> ok after 5000 -> error(no_down) end,
			HPid ! read;
		false ->
			HPid ! read,
			ok = gunmetal:data(C, undefined, fin, <<"tail">>),
			receive
				{server, {all, All}} ->
					?assertEqual(byte_size(Big) - byte_size(Rest) + 4, byte_size(All)),
					?assert(All =:= <<(binary:part(Big, 0, Sent))/binary, "tail">>)
			after 10000 -> error(no_all)
			end,
			receive {gun_error, C, _, _} = E -> error({unexpected, E}) after 0 -> ok end,
			gunmetal:close(C)
	end,
	flush_conn(C).

read_to_eof(S, Mod, Acc) ->
	case Mod:recv(S, 0, 10000) of
		{ok, D} -> read_to_eof(S, Mod, [Acc, D]);
		{error, _} -> iolist_to_binary(Acc)
	end.

%% Gun's raw_SUITE http11_upgrade_raw_tcp and http11_upgrade_raw_reply_to:
%% a GET asking to upgrade, answered by 101, makes the connection raw:
%% {upgrade, [<<"custom/1.0">>], _} for the request, then the byte stream
%% is undefined; with reply_to its gun_data go to that process.
http11_upgrade_raw_test() ->
	Upgrade = fun(Parent, S, Mod) ->
		{ok, _} = Mod:recv(S, 0, 5000),
		ok = Mod:send(S, "HTTP/1.1 101 Switching Protocols\r\n"
			"Connection: upgrade\r\nUpgrade: custom/1.0\r\n\r\n"),
		do_echo(Parent, S, Mod)
	end,
	{ok, _, Port} = init_origin(tcp, Upgrade),
	{ok, C} = gunmetal:open("localhost", Port),
	{ok, http} = gunmetal:await_up(C),
	Ref = gunmetal:get(C, "/", #{<<"connection">> => <<"upgrade">>, <<"upgrade">> => <<"custom/1.0">>}),
	{upgrade, [<<"custom/1.0">>], _} = gunmetal:await(C, Ref),
	ok = gunmetal:data(C, undefined, nofin, <<"Hello world!">>),
	{data, nofin, <<"Hello world!">>} = gunmetal:await(C, undefined),
	#{protocol := raw} = gunmetal:info(C),
	gunmetal:close(C),
	flush_conn(C),
	%% reply_to.
	Self = self(),
	ReplyTo = spawn_link(fun() ->
		{Conn, SRef} = receive Msg -> Msg after 5000 -> error(timeout) end,
		{upgrade, [<<"custom/1.0">>], _} = gunmetal:await(Conn, SRef),
		Self ! {self(), ready},
		{data, nofin, <<"Hello world!">>} = gunmetal:await(Conn, undefined),
		Self ! {self(), ok}
	end),
	{ok, C2} = gunmetal:open("localhost", Port),
	{ok, http} = gunmetal:await_up(C2),
	Ref2 = gunmetal:get(C2, "/", #{<<"connection">> => <<"upgrade">>, <<"upgrade">> => <<"custom/1.0">>},
		#{reply_to => ReplyTo}),
	ReplyTo ! {C2, Ref2},
	receive {ReplyTo, ready} -> ok after 5000 -> error(timeout) end,
	ok = gunmetal:data(C2, undefined, nofin, <<"Hello world!">>),
	receive {ReplyTo, ok} -> ok after 5000 -> error(timeout) end,
	receive {gun_data, C2, _, _, _} = M -> error({data_to_owner, M}) after 0 -> ok end,
	gunmetal:close(C2),
	flush_conn(C2).
