%% Proxies and tunnels (issue 12): gunmetal:connect/2,3,4 as Gun's
%% gun:connect through tinyproxy, SOCKS5 through microsocks (protocols
%% [socks] + socks_opts), gun_tunnel_up messages as Gun's, and info/1's
%% intermediaries and origin_*. Through nghttpx (an HTTP/2 forward proxy:
%% each CONNECT is a stream) the tunnel option of req_opts and ws_opts,
%% Gun's [TunnelRef, Ref] stream refs, stream_info/2's tunnel and
%% intermediaries, and the cases of Gun's tunnel_SUITE that fit these
%% proxies (named as there: proxies first, the origin last). The proxies (Debian's, installed by make
%% deps) are started by the tests on 127.0.0.1 on a port picked here, and
%% die with the port that runs them. The examples of Gun's manual page
%% gun:connect(3) run with `gun` changed to `gunmetal` (the proxy and the
%% origin are ours).
-module(gunmetal_tunnel_tests).
-include_lib("eunit/include/eunit.hrl").

port() -> list_to_integer(os:getenv("GM_HTTP_PORT")).
tls_port() -> list_to_integer(os:getenv("GM_HTTPS_PORT")).
ca() -> os:getenv("GM_CA").

%% ---- proxies

free_port() ->
	{ok, L} = gen_tcp:listen(0, [{ip, {127,0,0,1}}]),
	{ok, P} = inet:port(L),
	ok = gen_tcp:close(L),
	P.

%% Runs Exe Args under sh, which kills it when the port's stdin closes
%% (port_close, or this VM going away). Returns {Port, ListenPort}.
spawn_proxy(Exe, Args, ListenPort) ->
	Path = os:find_executable(Exe),
	?assert(is_list(Path)), % make deps installs it
	Port = open_port({spawn_executable, "/bin/sh"},
		[{args, ["-c", "\"$0\" \"$@\" >/dev/null 2>&1 & p=$!; read _; kill $p; wait", Path | Args]},
		 binary, exit_status]),
	wait_listen(ListenPort, 200),
	{Port, ListenPort}.

wait_listen(P, 0) -> error({proxy_not_listening, P});
wait_listen(P, N) ->
	case gen_tcp:connect({127,0,0,1}, P, [], 1000) of
		{ok, S} -> gen_tcp:close(S);
		_ -> timer:sleep(50), wait_listen(P, N - 1)
	end.

stop_proxy({Port, _}) ->
	catch port_close(Port),
	ok.

tinyproxy() -> tinyproxy(none).
tinyproxy(Auth) ->
	P = free_port(),
	Dir = string:trim(os:cmd("mktemp -d /tmp/gm-erl-tinyproxy.XXXXXX")),
	Conf = filename:join(Dir, "tinyproxy.conf"),
	ok = file:write_file(Conf, [io_lib:format("Port ~b\nListen 127.0.0.1\nTimeout 60\nMaxClients 100\n"
		"Allow 127.0.0.1\nLogLevel Info\n", [P]),
		case Auth of {U, Pw} -> io_lib:format("BasicAuth ~s ~s\n", [U, Pw]); none -> "" end]),
	spawn_proxy("tinyproxy", ["-d", "-c", Conf], P).

microsocks() -> microsocks(none).
microsocks(Auth) ->
	P = free_port(),
	Args = ["-i", "127.0.0.1", "-p", integer_to_list(P)] ++
		case Auth of {U, Pw} -> ["-u", U, "-P", Pw]; none -> [] end,
	spawn_proxy("microsocks", Args, P).

with(Proxy, Fun) ->
	try Fun(element(2, Proxy)) after stop_proxy(Proxy) end.

headers_seen(ConnPid) ->
	Ref = gunmetal:get(ConnPid, "/headers"),
	{response, nofin, 200, _} = gunmetal:await(ConnPid, Ref),
	{ok, Body} = gunmetal:await_body(ConnPid, Ref),
	Body.

has(Body, Sub) -> binary:match(Body, iolist_to_binary(Sub)) =/= nomatch.

%% ---- CONNECT

connect_http_test() ->
	with(tinyproxy(), fun(PP) ->
		{ok, ConnPid} = gunmetal:open("127.0.0.1", PP, #{retry => 0}),
		{ok, http} = gunmetal:await_up(ConnPid),
		#{intermediaries := []} = gunmetal:info(ConnPid),
		StreamRef = gunmetal:connect(ConnPid, #{host => "127.0.0.1", port => port()}),
		{response, fin, 200, _} = gunmetal:await(ConnPid, StreamRef),
		%% exactly Gun's message
		receive {gun_tunnel_up, ConnPid, StreamRef, Proto} -> ?assertEqual(http, Proto)
		after 5000 -> error(no_tunnel_up) end,
		%% no tunnel option: the connection is the origin's now (Gun's HTTP/1.1)
		Body = headers_seen(ConnPid),
		?assert(has(Body, ["\"host\":\"127.0.0.1:", integer_to_list(port()), "\""])),
		Info = gunmetal:info(ConnPid),
		?assertMatch(#{protocol := http, transport := tcp, origin_scheme := <<"http">>,
			origin_host := "127.0.0.1", intermediaries := [#{type := connect, host := "127.0.0.1",
			port := PP, transport := tcp, protocol := http}]}, Info),
		?assertEqual(port(), maps:get(origin_port, Info)),
		gunmetal:close(ConnPid)
	end).

connect_https_h2_test() ->
	with(tinyproxy(), fun(PP) ->
		{ok, ConnPid} = gunmetal:open("127.0.0.1", PP, #{retry => 0}),
		{ok, http} = gunmetal:await_up(ConnPid),
		StreamRef = gunmetal:connect(ConnPid, #{host => "localhost", port => tls_port(),
			transport => tls, protocols => [http2], tls_opts => [{cacertfile, ca()}]}),
		{response, fin, 200, _} = gunmetal:await(ConnPid, StreamRef),
		{up, http2} = gunmetal:await(ConnPid, StreamRef),
		?assert(has(headers_seen(ConnPid), "\"proto\":\"HTTP/2.0\"")),
		Info = gunmetal:info(ConnPid),
		?assertMatch(#{protocol := http2, transport := tls, origin_scheme := <<"https">>,
			origin_host := "localhost", intermediaries := [#{type := connect, port := PP}]}, Info),
		?assertEqual(tls_port(), maps:get(origin_port, Info)),
		gunmetal:close(ConnPid)
	end).

connect_proxy_auth_test() ->
	with(tinyproxy({"alice", "s3cret"}), fun(PP) ->
		%% retry 1: tinyproxy closes after its 407, and with retry 0 the
		%% connection process may be gone before info/1 (Gun's noproc)
		{ok, C1} = gunmetal:open("127.0.0.1", PP, #{retry => 1}),
		{ok, http} = gunmetal:await_up(C1),
		R1 = gunmetal:connect(C1, #{host => "127.0.0.1", port => port()}),
		%% a refusal is an ordinary response, as Gun's
		{response, nofin, 407, _} = gunmetal:await(C1, R1),
		#{intermediaries := []} = gunmetal:info(C1),
		gunmetal:close(C1),
		{ok, C2} = gunmetal:open("127.0.0.1", PP, #{retry => 0}),
		{ok, http} = gunmetal:await_up(C2),
		R2 = gunmetal:connect(C2, #{host => "127.0.0.1", port => port(),
			username => "alice", password => <<"s3cret">>}),
		{response, fin, 200, _} = gunmetal:await(C2, R2),
		{up, http} = gunmetal:await(C2, R2),
		?assertNot(has(headers_seen(C2), "proxy-authorization")),
		gunmetal:close(C2)
	end).

connect_nested_test() ->
	P2 = tinyproxy(),
	try
		with(tinyproxy(), fun(PP) ->
			{ok, ConnPid} = gunmetal:open("127.0.0.1", PP, #{retry => 0}),
			{ok, http} = gunmetal:await_up(ConnPid),
			R1 = gunmetal:connect(ConnPid, #{host => {127,0,0,1}, port => element(2, P2)}),
			{response, fin, 200, _} = gunmetal:await(ConnPid, R1),
			{up, http} = gunmetal:await(ConnPid, R1),
			R2 = gunmetal:connect(ConnPid, #{host => "localhost", port => tls_port(), transport => tls,
				protocols => [http], tls_opts => [{cacertfile, ca()}]}),
			{response, fin, 200, _} = gunmetal:await(ConnPid, R2),
			{up, http} = gunmetal:await(ConnPid, R2),
			?assert(has(headers_seen(ConnPid), ["\"host\":\"localhost:", integer_to_list(tls_port())])),
			#{intermediaries := [#{port := PP}, #{port := Port2}]} = gunmetal:info(ConnPid),
			?assertEqual(element(2, P2), Port2),
			gunmetal:close(ConnPid)
		end)
	after stop_proxy(P2)
	end.

connect_refusals_test() ->
	with(tinyproxy(), fun(PP) ->
		{ok, ConnPid} = gunmetal:open("127.0.0.1", PP, #{retry => 0}),
		{ok, http} = gunmetal:await_up(ConnPid),
		?assertError({badarg, _}, gunmetal:connect(ConnPid, #{host => "127.0.0.1"})),
		?assertError({badarg, _}, gunmetal:connect(ConnPid, #{host => "127.0.0.1", port => 1, bogus => 1})),
		?assertError({badarg, _}, gunmetal:connect(ConnPid, #{host => "127.0.0.1", port => 1, transport => quic})),
		?assertError({badarg, _}, gunmetal:connect(ConnPid, #{host => "127.0.0.1", port => 1},
			[{<<"content-length">>, <<"0">>}])),
		?assertError({badarg, _}, gunmetal:connect(ConnPid, #{host => "127.0.0.1", port => 1}, [],
			#{tunnel => not_a_ref})),
		?assertError({badarg, _}, gunmetal:connect(ConnPid, #{host => self(), port => 1})),
		%% nothing went out: the proxy's first answer is to this CONNECT
		R = gunmetal:connect(ConnPid, #{host => "127.0.0.1", port => port()}),
		{response, fin, 200, _} = gunmetal:await(ConnPid, R),
		{up, http} = gunmetal:await(ConnPid, R),
		gunmetal:close(ConnPid)
	end),
	%% CONNECT needs an HTTP connection: on raw, gun_error on the stream
	{ok, Raw} = gunmetal:open("127.0.0.1", port(), #{protocols => [raw], retry => 0}),
	{ok, raw} = gunmetal:await_up(Raw),
	R2 = gunmetal:connect(Raw, #{host => "127.0.0.1", port => port()}),
	{error, {stream_error, {unsupported, Msg}}} = gunmetal:await(Raw, R2),
	?assert(has(Msg, "HTTP connection")),
	gunmetal:close(Raw).

%% ---- SOCKS5

socks_test() ->
	with(microsocks(), fun(SP) ->
		{ok, ConnPid} = gunmetal:open("127.0.0.1", SP, #{retry => 0, protocols => [socks],
			socks_opts => #{host => "127.0.0.1", port => port()}}),
		{ok, socks} = gunmetal:await_up(ConnPid),
		%% Gun's undefined StreamRef
		receive {gun_tunnel_up, ConnPid, undefined, Proto} -> ?assertEqual(http, Proto)
		after 5000 -> error(no_tunnel_up) end,
		?assert(has(headers_seen(ConnPid), ["\"host\":\"127.0.0.1:", integer_to_list(port())])),
		Info = gunmetal:info(ConnPid),
		?assertMatch(#{intermediaries := [#{type := socks5, host := "127.0.0.1", port := SP,
			transport := tcp, protocol := socks}], origin_host := "127.0.0.1"}, Info),
		?assertEqual(port(), maps:get(origin_port, Info)),
		gunmetal:close(ConnPid)
	end).

%% Gun's protocol() also takes {socks, socks_opts()} in protocols.
socks_in_protocols_test() ->
	with(microsocks({"bob", "hunter22"}), fun(SP) ->
		{ok, ConnPid} = gunmetal:open("127.0.0.1", SP, #{retry => 0, protocols => [{socks, #{
			host => "127.0.0.1", port => port(), auth => [{username_password, "bob", "hunter22"}]}}]}),
		{ok, socks} = gunmetal:await_up(ConnPid),
		{up, http} = gunmetal:await(ConnPid, undefined),
		?assert(has(headers_seen(ConnPid), ["\"host\":\"127.0.0.1:", integer_to_list(port())])),
		gunmetal:close(ConnPid)
	end).

socks_auth_tls_test() ->
	with(microsocks({"bob", "hunter22"}), fun(SP) ->
		{ok, ConnPid} = gunmetal:open("127.0.0.1", SP, #{retry => 0, protocols => [socks],
			socks_opts => #{host => "localhost", port => tls_port(),
				auth => [{username_password, "bob", "hunter22"}],
				transport => tls, tls_opts => [{cacertfile, ca()}]}}),
		{ok, socks} = gunmetal:await_up(ConnPid),
		{up, http2} = gunmetal:await(ConnPid, undefined),
		?assert(has(headers_seen(ConnPid), "\"proto\":\"HTTP/2.0\"")),
		#{origin_scheme := <<"https">>, transport := tls} = gunmetal:info(ConnPid),
		gunmetal:close(ConnPid)
	end).

socks_auth_refused_test() ->
	with(microsocks({"bob", "hunter22"}), fun(SP) ->
		{ok, ConnPid} = gunmetal:open("127.0.0.1", SP, #{retry => 0, protocols => [socks],
			socks_opts => #{host => "127.0.0.1", port => port(),
				auth => [{username_password, "bob", "wrong"}]}}),
		{ok, socks} = gunmetal:await_up(ConnPid),
		%% the proxy's refusal, "socks: ..." as {socks, Detail}
		receive {gun_down, ConnPid, socks, Reason, []} -> ?assertMatch({socks, _}, Reason)
		after 5000 -> error(no_down) end
	end).

%% ---- Gun's manual, gun:connect(3), module name changed

%% The proxy is tinyproxy on 127.0.0.1 instead of proxy.example.org:1080;
%% origin-server.example.org is the test server.
manual_establish_a_tunnel_test() ->
	with(tinyproxy(), fun(PP) ->
		{ok, ConnPid} = gunmetal:open("127.0.0.1", PP),
		{ok, http} = gunmetal:await_up(ConnPid),
		StreamRef = gunmetal:connect(ConnPid, #{
		    host => "127.0.0.1",
		    port => port()
		}),
		{response, fin, 200, _} = gunmetal:await(ConnPid, StreamRef),
		%% Subsequent requests will be sent to origin-server.example.org.
		{up, http} = gunmetal:await(ConnPid, StreamRef),
		?assertMatch(#{intermediaries := [_]}, gunmetal:info(ConnPid)),
		gunmetal:close(ConnPid)
	end).

manual_tunnel_for_a_secure_http2_connection_test() ->
	with(tinyproxy(), fun(PP) ->
		{ok, ConnPid} = gunmetal:open("127.0.0.1", PP),
		{ok, http} = gunmetal:await_up(ConnPid),
		StreamRef = gunmetal:connect(ConnPid, #{
		    host => "localhost",
		    port => tls_port(),
		    protocols => [http2],
		    transport => tls,
		    tls_opts => [{cacertfile, ca()}]
		}),
		{response, fin, 200, _} = gunmetal:await(ConnPid, StreamRef),
		%% Subsequent requests will be sent to origin-server.example.org.
		{up, http2} = gunmetal:await(ConnPid, StreamRef),
		gunmetal:close(ConnPid)
	end).

manual_tunnel_using_proxy_authorization_test() ->
	with(tinyproxy({"essen", "myrealpasswordis"}), fun(PP) ->
		{ok, ConnPid} = gunmetal:open("127.0.0.1", PP),
		{ok, http} = gunmetal:await_up(ConnPid),
		StreamRef = gunmetal:connect(ConnPid, #{
		    host => "127.0.0.1",
		    port => port(),
		    username => "essen",
		    password => "myrealpasswordis"
		}),
		{response, fin, 200, _} = gunmetal:await(ConnPid, StreamRef),
		%% Subsequent requests will be sent to origin-server.example.org.
		{up, http} = gunmetal:await(ConnPid, StreamRef),
		gunmetal:close(ConnPid)
	end).

%% ---- HTTP/2 proxy: the tunnel option (Gun 2.0: requests without it go
%% to the proxy itself)

%% nghttpx as an HTTP/2 forward proxy (--http2-proxy), h2c on 127.0.0.1,
%% with a tinyproxy behind it as its documented setup has it.
%% With tls, over TLS (h2 by ALPN) with the test server's certificate.
nghttpx(Tls) ->
	TP = tinyproxy(),
	P = free_port(),
	Dir = string:trim(os:cmd("mktemp -d /tmp/gm-erl-nghttpx.XXXXXX")),
	Front = "127.0.0.1," ++ integer_to_list(P),
	FrontArgs = case Tls of
		tcp -> ["-f", Front ++ ";no-tls"];
		tls ->
			CertDir = filename:dirname(ca()),
			["-f", Front, filename:join(CertDir, "key.pem"), filename:join(CertDir, "cert.pem")]
	end,
	N = spawn_proxy("nghttpx", ["--http2-proxy", "--workers=1", "--log-level=ERROR",
		"--pid-file=" ++ filename:join(Dir, "pid"), "--conf=/dev/null",
		"--errorlog-file=/dev/null", "--accesslog-file=/dev/null",
		"-b", "127.0.0.1," ++ integer_to_list(element(2, TP))] ++ FrontArgs, P),
	{N, TP}.

with_nghttpx(Fun) ->
	with_nghttpx(tcp, Fun).

with_nghttpx(Tls, Fun) ->
	{N, TP} = nghttpx(Tls),
	try Fun(element(2, N)) after stop_proxy(N), stop_proxy(TP) end.

h2_proxy_conn(PP) ->
	{ok, ConnPid} = gunmetal:open("127.0.0.1", PP, #{retry => 0, protocols => [http2]}),
	{ok, http2} = gunmetal:await_up(ConnPid),
	ConnPid.

%% A CONNECT that must succeed: its 200, then its gun_tunnel_up.
tunnel_to(ConnPid, Dest, ReqOpts, Protocol) ->
	StreamRef = gunmetal:connect(ConnPid, Dest, [], ReqOpts),
	{response, fin, 200, _} = gunmetal:await(ConnPid, StreamRef),
	receive {gun_tunnel_up, ConnPid, StreamRef, P} -> ?assertEqual(Protocol, P)
	after 5000 -> error({no_tunnel_up, StreamRef}) end,
	StreamRef.

origin_dest() -> #{host => "127.0.0.1", port => port()}.
origin_authority() -> ["\"host\":\"127.0.0.1:", integer_to_list(port()), "\""].

tunnel_get_test() ->
	with_nghttpx(fun(PP) ->
		ConnPid = h2_proxy_conn(PP),
		T = tunnel_to(ConnPid, origin_dest(), #{}, http),
		?assert(is_reference(T)),
		%% Gun's stream ref inside a tunnel: [TunnelRef, Ref]
		StreamRef = gunmetal:get(ConnPid, "/headers", [], #{tunnel => T}),
		?assertMatch([T, R] when is_reference(R), StreamRef),
		receive {gun_response, ConnPid, StreamRef, nofin, 200, _} -> ok
		after 5000 -> error(no_response) end,
		{ok, Body} = gunmetal:await_body(ConnPid, StreamRef),
		?assert(has(Body, origin_authority())),
		?assert(has(Body, "\"proto\":\"HTTP/1.1\"")),
		%% the origin's own bytes: no proxy added a via
		?assertNot(has(Body, "\"via\"")),
		%% the same tunnel again, with the tunnel given as a list
		S2 = gunmetal:get(ConnPid, "/bytes/1000", [], #{tunnel => [T]}),
		?assertMatch([T, _], S2),
		{response, nofin, 200, _} = gunmetal:await(ConnPid, S2),
		{ok, B2} = gunmetal:await_body(ConnPid, S2),
		?assertEqual(1000, byte_size(B2)),
		%% HTTP/2 keeps no connection-wide intermediaries (Gun's)
		?assertMatch(#{protocol := http2, intermediaries := []}, gunmetal:info(ConnPid)),
		gunmetal:close(ConnPid)
	end).

%% Gun's ping/2 with tunnel (tunnel_SUITE's h2c pings): the h2c origin at
%% the tunnel's end acks; the ping's ref is a plain reference and its ack
%% is {notify, ping_ack, PingRef} from await(ConnPid, undefined). A tunnel
%% to an HTTP/1.1 origin has no ping: Gun's gun_error shape.
tunnel_ping_test() ->
	with_nghttpx(fun(PP) ->
		ConnPid = h2_proxy_conn(PP),
		T = tunnel_to(ConnPid, (origin_dest())#{protocols => [http2]}, #{}, http2),
		PingRef = gunmetal:ping(ConnPid, #{tunnel => T}),
		?assert(is_reference(PingRef)),
		{notify, ping_ack, PingRef} = gunmetal:await(ConnPid, undefined),
		PingRef2 = gunmetal:ping(ConnPid),
		{notify, ping_ack, PingRef2} = gunmetal:await(ConnPid, undefined),
		T1 = tunnel_to(ConnPid, (origin_dest())#{protocols => [http]}, #{}, http),
		P3 = gunmetal:ping(ConnPid, #{tunnel => T1}),
		receive {gun_error, ConnPid, P3, {unsupported, _}} -> ok
		after 5000 -> error(no_gun_error) end,
		?assertError(_, gunmetal:ping(ConnPid, #{tunnel => 1})),
		gunmetal:close(ConnPid)
	end).

%% Gun 2.0's rule: a request without the tunnel option goes to the proxy
%% itself (nghttpx hands it to the tinyproxy behind it, which adds its via).
tunnel_request_without_tunnel_goes_to_the_proxy_test() ->
	with_nghttpx(fun(PP) ->
		ConnPid = h2_proxy_conn(PP),
		T = tunnel_to(ConnPid, origin_dest(), #{}, http),
		Authority = ["127.0.0.1:", integer_to_list(port())],
		Direct = gunmetal:get(ConnPid, "/headers", [{<<"host">>, Authority}]),
		?assert(is_reference(Direct)),
		{response, nofin, 200, _} = gunmetal:await(ConnPid, Direct),
		{ok, Body} = gunmetal:await_body(ConnPid, Direct),
		?assert(has(Body, "\"via\"")),
		Through = gunmetal:get(ConnPid, "/headers", [{<<"host">>, Authority}], #{tunnel => T}),
		{response, nofin, 200, _} = gunmetal:await(ConnPid, Through),
		{ok, Body2} = gunmetal:await_body(ConnPid, Through),
		?assertNot(has(Body2, "\"via\"")),
		gunmetal:close(ConnPid)
	end).

tunnel_post_test() ->
	with_nghttpx(fun(PP) ->
		ConnPid = h2_proxy_conn(PP),
		T = tunnel_to(ConnPid, origin_dest(), #{}, http),
		S1 = gunmetal:post(ConnPid, "/echo", [], <<"hello tunnel">>, #{tunnel => T}),
		{response, nofin, 200, H1} = gunmetal:await(ConnPid, S1),
		?assertEqual({<<"x-method">>, <<"POST">>}, lists:keyfind(<<"x-method">>, 1, H1)),
		?assertEqual({ok, <<"hello tunnel">>}, gunmetal:await_body(ConnPid, S1)),
		%% a streamed body: data/4 takes the list stream ref
		S2 = gunmetal:post(ConnPid, "/echo", [{<<"content-type">>, <<"text/plain">>}], #{tunnel => T}),
		?assertMatch([T, _], S2),
		ok = gunmetal:data(ConnPid, S2, nofin, <<"one ">>),
		ok = gunmetal:data(ConnPid, S2, fin, [<<"two">>]),
		{response, nofin, 200, _} = gunmetal:await(ConnPid, S2),
		?assertEqual({ok, <<"one two">>}, gunmetal:await_body(ConnPid, S2)),
		%% a large body (sent by the connection process) through the tunnel
		Big = binary:copy(<<"0123456789abcdef">>, 20000),
		S3 = gunmetal:put(ConnPid, "/echo", [], Big, #{tunnel => T}),
		{response, nofin, 200, _} = gunmetal:await(ConnPid, S3),
		?assertEqual({ok, Big}, gunmetal:await_body(ConnPid, S3)),
		gunmetal:close(ConnPid)
	end).

%% TLS inside the HTTP/2 stream: Gun's h2c_https and h2c_h2 (one proxy).
tunnel_https_origins_test() ->
	with_nghttpx(fun(PP) ->
		ConnPid = h2_proxy_conn(PP),
		TLS = #{host => "localhost", port => tls_port(), transport => tls,
			tls_opts => [{cacertfile, ca()}]},
		T1 = tunnel_to(ConnPid, TLS#{protocols => [http]}, #{}, http),
		T2 = tunnel_to(ConnPid, TLS#{protocols => [http2]}, #{}, http2),
		[begin
			S = gunmetal:get(ConnPid, "/headers", [], #{tunnel => T}),
			{response, nofin, 200, _} = gunmetal:await(ConnPid, S),
			{ok, B} = gunmetal:await_body(ConnPid, S),
			?assert(has(B, ["\"proto\":\"", Proto, "\""])),
			?assert(has(B, ["\"host\":\"localhost:", integer_to_list(tls_port()), "\""]))
		end || {T, Proto} <- [{T1, "HTTP/1.1"}, {T2, "HTTP/2.0"}]],
		{ok, #{tunnel := Tun}} = gunmetal:stream_info(ConnPid, T2),
		?assertEqual(#{transport => tls, protocol => http2, origin_scheme => <<"https">>,
			origin_host => "localhost", origin_port => tls_port()}, Tun),
		gunmetal:close(ConnPid)
	end).

tunnel_ws_test() ->
	with_nghttpx(fun(PP) ->
		ConnPid = h2_proxy_conn(PP),
		T = tunnel_to(ConnPid, origin_dest(), #{}, http),
		W = gunmetal:ws_upgrade(ConnPid, "/ws", [], #{tunnel => T}),
		?assertMatch([T, _], W),
		{upgrade, [<<"websocket">>], _} = gunmetal:await(ConnPid, W),
		ok = gunmetal:ws_send(ConnPid, W, {text, <<"through the tunnel">>}),
		receive {gun_ws, ConnPid, W, Frame} -> ?assertEqual({text, <<"through the tunnel">>}, Frame)
		after 5000 -> error(no_echo) end,
		ok = gunmetal:ws_send(ConnPid, W, [{binary, <<1,2,3>>}, close]),
		{ws, {binary, <<1,2,3>>}} = gunmetal:await(ConnPid, W),
		%% the server's close frame ends it (the echo server sends its own)
		{ws, Close} = gunmetal:await(ConnPid, W),
		?assert(Close =:= close orelse element(1, Close) =:= close),
		%% the tunnel's HTTP/1.1 connection went with the WebSocket; the
		%% proxy connection and another tunnel are fine
		T2 = tunnel_to(ConnPid, origin_dest(), #{}, http),
		S = gunmetal:get(ConnPid, "/bytes/10", [], #{tunnel => T2}),
		{response, nofin, 200, _} = gunmetal:await(ConnPid, S),
		gunmetal:close(ConnPid)
	end).

%% Gun's h2c_raw (tunnel_SUITE do_origin_stream): the raw tunnel's bytes on
%% the CONNECT's own stream ref.
tunnel_raw_test() ->
	{ok, _, EchoPort} = gunmetal_raw_tests:init_origin(tcp, fun gunmetal_raw_tests:do_echo/3),
	with_nghttpx(fun(PP) ->
		ConnPid = h2_proxy_conn(PP),
		T = tunnel_to(ConnPid, #{host => "127.0.0.1", port => EchoPort, protocols => [raw]}, #{}, raw),
		ok = gunmetal:data(ConnPid, T, nofin, <<"Hello world!">>),
		{data, nofin, <<"Hello world!">>} = gunmetal:await(ConnPid, T),
		{ok, #{ref := T, tunnel := #{protocol := raw, origin_scheme := undefined,
			origin_port := EchoPort}}} = gunmetal:stream_info(ConnPid, T),
		gunmetal:close(ConnPid)
	end).

%% HTTP/2 to the origin inside the HTTP/2 tunnel (TLS inside the stream):
%% a cancelled stream does not hold the others up.
h2_origin_dest() ->
	#{host => "localhost", port => tls_port(), transport => tls, protocols => [http2],
		tls_opts => [{cacertfile, ca()}]}.

tunnel_cancel_test() ->
	with_nghttpx(fun(PP) ->
		ConnPid = h2_proxy_conn(PP),
		T = tunnel_to(ConnPid, h2_origin_dest(), #{}, http2),
		%% a stream inside the tunnel
		Slow = gunmetal:get(ConnPid, "/delay/10000", [], #{tunnel => T}),
		{ok, #{ref := Slow, state := running}} = gunmetal:stream_info(ConnPid, Slow),
		ok = gunmetal:cancel(ConnPid, Slow),
		%% cancelled twice: Gun's not found, on the list ref
		ok = gunmetal:cancel(ConnPid, Slow),
		receive {gun_error, ConnPid, Slow, {badstate, _}} -> ok after 5000 -> error(no_badstate) end,
		S = gunmetal:get(ConnPid, "/bytes/5", [], #{tunnel => T}),
		{ok, <<"abcde">>} = gunmetal:await_body(ConnPid, S),
		%% the tunnel itself: its streams end with an error, the connection
		%% stays, and the tunnel is gone
		Inner = gunmetal:get(ConnPid, "/delay/10000", [], #{tunnel => T}),
		{ok, #{ref := Inner}} = gunmetal:stream_info(ConnPid, Inner),
		ok = gunmetal:cancel(ConnPid, T),
		{error, {stream_error, Reason}} = gunmetal:await(ConnPid, Inner),
		?assertMatch({closed, _}, Reason),
		{ok, undefined} = gunmetal:stream_info(ConnPid, T),
		Late = gunmetal:get(ConnPid, "/", [], #{tunnel => T}),
		?assertMatch([T, _], Late),
		{error, {stream_error, {badstate, "The stream cannot be found."}}} = gunmetal:await(ConnPid, Late),
		T2 = tunnel_to(ConnPid, origin_dest(), #{}, http),
		S2 = gunmetal:get(ConnPid, "/bytes/3", [], #{tunnel => T2}),
		{ok, <<"abc">>} = gunmetal:await_body(ConnPid, S2),
		gunmetal:close(ConnPid)
	end).

tunnel_stream_info_test() ->
	with_nghttpx(fun(PP) ->
		ConnPid = h2_proxy_conn(PP),
		T = tunnel_to(ConnPid, origin_dest(), #{}, http),
		Self = self(),
		Port = port(),
		{ok, #{ref := T, reply_to := Self, state := running, tunnel := #{transport := tcp,
			protocol := http, origin_scheme := <<"http">>, origin_host := "127.0.0.1",
			origin_port := Port}}} = gunmetal:stream_info(ConnPid, T),
		Inner = gunmetal:get(ConnPid, "/delay/10000", [], #{tunnel => T}),
		{ok, Info} = gunmetal:stream_info(ConnPid, Inner),
		?assertMatch(#{ref := Inner, reply_to := Self, state := running,
			intermediaries := [#{type := connect, host := "127.0.0.1", port := PP,
				transport := tcp, protocol := http2}]}, Info),
		?assertNot(is_map_key(tunnel, Info)),
		%% flow: update_flow/3 takes the list ref (without it the body
		%% stops after its first piece). Another tunnel: the slow request
		%% holds the first one's HTTP/1.1 connection.
		T2 = tunnel_to(ConnPid, origin_dest(), #{}, http),
		F = gunmetal:get(ConnPid, "/bytes/300000", [], #{tunnel => T2, flow => 1}),
		{response, nofin, 200, _} = gunmetal:await(ConnPid, F),
		ok = gunmetal:update_flow(ConnPid, F, 1000),
		{ok, FB} = gunmetal:await_body(ConnPid, F),
		?assertEqual(300000, byte_size(FB)),
		gunmetal:close(ConnPid)
	end).

%% The tunnel option refused: bad values raise badarg (as Gun's ++ does);
%% a reference that is no stream, or a stream that is no tunnel, gets
%% Gun's gun_error on the new stream ref.
tunnel_refusals_test() ->
	with_nghttpx(fun(PP) ->
		ConnPid = h2_proxy_conn(PP),
		[?assertError({badarg, _}, F()) || F <- [
			fun() -> gunmetal:get(ConnPid, "/", [], #{tunnel => foo}) end,
			fun() -> gunmetal:get(ConnPid, "/", [], #{tunnel => []}) end,
			fun() -> gunmetal:get(ConnPid, "/", [], #{tunnel => [make_ref(), bar]}) end,
			fun() -> gunmetal:get(ConnPid, "/", [], #{tunnel => "abc"}) end,
			fun() -> gunmetal:post(ConnPid, "/", [], <<"x">>, #{tunnel => 42}) end,
			fun() -> gunmetal:ws_upgrade(ConnPid, "/ws", [], #{tunnel => self()}) end,
			fun() -> gunmetal:connect(ConnPid, origin_dest(), [], #{tunnel => {a, b}}) end
		]],
		Foreign = make_ref(),
		R1 = gunmetal:get(ConnPid, "/", [], #{tunnel => Foreign}),
		?assertMatch([Foreign, _], R1),
		{error, {stream_error, {badstate, "The stream cannot be found."}}} = gunmetal:await(ConnPid, R1),
		R2 = gunmetal:ws_upgrade(ConnPid, "/ws", [], #{tunnel => Foreign}),
		{error, {stream_error, {badstate, "The stream cannot be found."}}} = gunmetal:await(ConnPid, R2),
		R3 = gunmetal:connect(ConnPid, origin_dest(), [], #{tunnel => Foreign}),
		{error, {stream_error, {badstate, "The stream cannot be found."}}} = gunmetal:await(ConnPid, R3),
		%% a running request is no tunnel
		Plain = gunmetal:get(ConnPid, "/delay/5000", [{<<"host">>, ["127.0.0.1:", integer_to_list(port())]}]),
		R4 = gunmetal:get(ConnPid, "/", [], #{tunnel => Plain}),
		?assertMatch([Plain, _], R4),
		{error, {stream_error, {badstate, "The stream is not a tunnel."}}} = gunmetal:await(ConnPid, R4),
		%% nothing of those went out: the connection and a tunnel work
		T = tunnel_to(ConnPid, origin_dest(), #{}, http),
		S = gunmetal:get(ConnPid, "/bytes/4", [], #{tunnel => T}),
		{ok, <<"abcd">>} = gunmetal:await_body(ConnPid, S),
		gunmetal:close(ConnPid)
	end).

%% ---- Gun's tunnel_SUITE: two proxies, then the origin (stream refs,
%% stream_info and info as there)

%% h2c_http_http: nghttpx, then tinyproxy through it, then the origin.
h2c_http_http_test() ->
	P2 = tinyproxy(),
	try
		with_nghttpx(fun(PP) ->
			ConnPid = h2_proxy_conn(PP),
			Proxy2Port = element(2, P2),
			StreamRef1 = tunnel_to(ConnPid, #{host => "127.0.0.1", port => Proxy2Port}, #{}, http),
			StreamRef2 = gunmetal:connect(ConnPid, origin_dest(), [], #{tunnel => StreamRef1}),
			?assertMatch([StreamRef1, _], StreamRef2),
			{response, fin, 200, _} = gunmetal:await(ConnPid, StreamRef2),
			{up, http} = gunmetal:await(ConnPid, StreamRef2),
			StreamRef3 = gunmetal:get(ConnPid, "/headers", [], #{tunnel => StreamRef2}),
			?assertMatch([StreamRef1, _, _], StreamRef3),
			?assertEqual(StreamRef2, lists:droplast(StreamRef3)),
			{response, nofin, 200, _} = gunmetal:await(ConnPid, StreamRef3),
			{ok, Body} = gunmetal:await_body(ConnPid, StreamRef3),
			?assert(has(Body, origin_authority())),
			%% do_proxy1_stream_info: the first tunnel leads to proxy2
			{ok, #{ref := StreamRef1, state := running, tunnel := #{transport := tcp,
				protocol := http, origin_scheme := <<"http">>, origin_host := "127.0.0.1",
				origin_port := Proxy2Port}}} = gunmetal:stream_info(ConnPid, StreamRef1),
			%% do_origin_stream_info: a stream through both proxies
			Slow = gunmetal:get(ConnPid, "/delay/5000", [], #{tunnel => StreamRef2}),
			{ok, #{ref := Slow, state := running, intermediaries := [
				#{type := connect, host := "127.0.0.1", port := PP, transport := tcp, protocol := http2},
				#{type := connect, host := "127.0.0.1", port := Proxy2Port, transport := tcp, protocol := http}
			]}} = gunmetal:stream_info(ConnPid, Slow),
			%% do_info: no connection-wide intermediaries with HTTP/2 first
			#{transport := tcp, protocol := http2, origin_host := "127.0.0.1", origin_port := PP,
				intermediaries := []} = gunmetal:info(ConnPid),
			gunmetal:close(ConnPid)
		end)
	after stop_proxy(P2)
	end.

%% http_h2c_http: tinyproxy, then nghttpx through it (the connection
%% becomes HTTP/2 to nghttpx), then the origin through an HTTP/2 CONNECT
%% named by the first CONNECT's ref.
http_h2c_http_test() ->
	with(tinyproxy(), fun(P1) ->
		with_nghttpx(fun(P2) ->
			{ok, ConnPid} = gunmetal:open("127.0.0.1", P1, #{retry => 0}),
			{ok, http} = gunmetal:await_up(ConnPid),
			StreamRef1 = gunmetal:connect(ConnPid, #{host => "127.0.0.1", port => P2, protocols => [http2]}),
			{response, fin, 200, _} = gunmetal:await(ConnPid, StreamRef1),
			{up, http2} = gunmetal:await(ConnPid, StreamRef1),
			StreamRef2 = gunmetal:connect(ConnPid, origin_dest(), [], #{tunnel => StreamRef1}),
			?assertMatch([StreamRef1, _], StreamRef2),
			{response, fin, 200, _} = gunmetal:await(ConnPid, StreamRef2),
			{up, http} = gunmetal:await(ConnPid, StreamRef2),
			StreamRef3 = gunmetal:get(ConnPid, "/headers", [], #{tunnel => StreamRef2}),
			?assertMatch([StreamRef1, _, _], StreamRef3),
			{response, nofin, 200, _} = gunmetal:await(ConnPid, StreamRef3),
			{ok, Body} = gunmetal:await_body(ConnPid, StreamRef3),
			?assert(has(Body, origin_authority())),
			%% do_info: the HTTP/1.1 proxy is the connection's intermediary,
			%% the connection speaks HTTP/2 to the second proxy
			#{protocol := http2, origin_port := P2, intermediaries := [#{type := connect,
				port := P1, protocol := http}]} = gunmetal:info(ConnPid),
			gunmetal:close(ConnPid)
		end)
	end).

%% h2c_h2c_http: an HTTP/2 CONNECT inside an HTTP/2 tunnel (two nghttpx).
h2c_h2c_http_test() ->
	with_nghttpx(fun(P1) ->
		with_nghttpx(fun(P2) ->
			ConnPid = h2_proxy_conn(P1),
			StreamRef1 = tunnel_to(ConnPid, #{host => "127.0.0.1", port => P2, protocols => [http2]}, #{}, http2),
			StreamRef2 = gunmetal:connect(ConnPid, origin_dest(), [], #{tunnel => StreamRef1}),
			?assertMatch([StreamRef1, _], StreamRef2),
			{response, fin, 200, _} = gunmetal:await(ConnPid, StreamRef2),
			{up, http} = gunmetal:await(ConnPid, StreamRef2),
			StreamRef3 = gunmetal:get(ConnPid, "/headers", [], #{tunnel => StreamRef2}),
			?assertMatch([StreamRef1, _, _], StreamRef3),
			{response, nofin, 200, _} = gunmetal:await(ConnPid, StreamRef3),
			{ok, Body} = gunmetal:await_body(ConnPid, StreamRef3),
			?assert(has(Body, origin_authority())),
			%% do_proxy2_stream_info: the inner CONNECT went through proxy1
			%% and leads to the origin
			Port = port(),
			{ok, #{ref := StreamRef2, state := running,
				intermediaries := [#{type := connect, port := P1, protocol := http2}],
				tunnel := #{transport := tcp, protocol := http, origin_host := "127.0.0.1",
					origin_port := Port}}} = gunmetal:stream_info(ConnPid, StreamRef2),
			%% do_origin_stream_info
			Slow = gunmetal:get(ConnPid, "/delay/5000", [], #{tunnel => StreamRef2}),
			{ok, #{intermediaries := [#{port := P1, protocol := http2}, #{port := P2, protocol := http2}]}}
				= gunmetal:stream_info(ConnPid, Slow),
			gunmetal:close(ConnPid)
		end)
	end).

%% http_http_http, as tunnel_SUITE writes it: the second CONNECT and the
%% request name the tunnels although HTTP/1.1 needs no option; the stream
%% refs and the messages are Gun's lists.
http_http_http_test() ->
	P2 = tinyproxy(),
	try
		with(tinyproxy(), fun(P1) ->
			{ok, ConnPid} = gunmetal:open("127.0.0.1", P1, #{retry => 0}),
			{ok, http} = gunmetal:await_up(ConnPid),
			StreamRef1 = gunmetal:connect(ConnPid, #{host => "127.0.0.1", port => element(2, P2)}),
			{response, fin, 200, _} = gunmetal:await(ConnPid, StreamRef1),
			{up, http} = gunmetal:await(ConnPid, StreamRef1),
			StreamRef2 = gunmetal:connect(ConnPid, origin_dest(), [], #{tunnel => StreamRef1}),
			?assertMatch([StreamRef1, _], StreamRef2),
			receive {gun_response, ConnPid, StreamRef2, fin, 200, _} -> ok
			after 5000 -> error(no_response) end,
			receive {gun_tunnel_up, ConnPid, StreamRef2, http} -> ok
			after 5000 -> error(no_tunnel_up) end,
			StreamRef3 = gunmetal:get(ConnPid, "/headers", [], #{tunnel => StreamRef2}),
			?assertMatch([StreamRef1, _, _], StreamRef3),
			{response, nofin, 200, _} = gunmetal:await(ConnPid, StreamRef3),
			{ok, Body} = gunmetal:await_body(ConnPid, StreamRef3),
			?assert(has(Body, origin_authority())),
			#{intermediaries := [#{port := P1}, #{port := Port2}]} = gunmetal:info(ConnPid),
			?assertEqual(element(2, P2), Port2),
			gunmetal:close(ConnPid)
		end)
	after stop_proxy(P2)
	end.

%% h2c_socks5_http: a SOCKS5 proxy at the end of an HTTP/2 tunnel: two
%% gun_tunnel_up on the tunnel's ref (socks, then the origin's), as Gun's.
h2c_socks5_http_test() ->
	with(microsocks(), fun(SP) ->
		with_nghttpx(fun(PP) ->
			ConnPid = h2_proxy_conn(PP),
			StreamRef = tunnel_to(ConnPid, #{host => "127.0.0.1", port => SP,
				protocols => [{socks, #{host => "127.0.0.1", port => port()}}]}, #{}, socks),
			{up, http} = gunmetal:await(ConnPid, StreamRef),
			S = gunmetal:get(ConnPid, "/headers", [], #{tunnel => StreamRef}),
			{response, nofin, 200, _} = gunmetal:await(ConnPid, S),
			{ok, Body} = gunmetal:await_body(ConnPid, S),
			?assert(has(Body, origin_authority())),
			gunmetal:close(ConnPid)
		end)
	end).

%% http_socks5_http: a SOCKS5 proxy at the end of an HTTP/1.1 CONNECT; the
%% second gun_tunnel_up (the origin's) follows the first (socks).
http_socks5_http_test() ->
	with(microsocks(), fun(SP) ->
		with(tinyproxy(), fun(PP) ->
			{ok, ConnPid} = gunmetal:open("127.0.0.1", PP, #{retry => 0}),
			{ok, http} = gunmetal:await_up(ConnPid),
			StreamRef = gunmetal:connect(ConnPid, #{host => "127.0.0.1", port => SP,
				protocols => [{socks, #{host => "127.0.0.1", port => port()}}]}),
			{response, fin, 200, _} = gunmetal:await(ConnPid, StreamRef),
			{up, socks} = gunmetal:await(ConnPid, StreamRef),
			{up, http} = gunmetal:await(ConnPid, StreamRef),
			?assert(has(headers_seen(ConnPid), origin_authority())),
			gunmetal:close(ConnPid)
		end)
	end).

%% http_raw (tunnel_SUITE's do_origin_stream for raw): raw through an
%% HTTP/1.1 CONNECT is a byte stream on the CONNECT's StreamRef.
http_raw_test() ->
	{ok, _, EchoPort} = gunmetal_raw_tests:init_origin(tcp, fun gunmetal_raw_tests:do_echo/3),
	with(tinyproxy(), fun(PP) ->
		{ok, ConnPid} = gunmetal:open("127.0.0.1", PP, #{retry => 0}),
		{ok, http} = gunmetal:await_up(ConnPid),
		StreamRef = gunmetal:connect(ConnPid, #{host => "127.0.0.1", port => EchoPort, protocols => [raw]}),
		{response, fin, 200, _} = gunmetal:await(ConnPid, StreamRef),
		{up, raw} = gunmetal:await(ConnPid, StreamRef),
		ok = gunmetal:data(ConnPid, StreamRef, nofin, <<"Hello world!">>),
		{data, nofin, <<"Hello world!">>} = gunmetal:await(ConnPid, StreamRef),
		gunmetal:close(ConnPid)
	end).

%% h2_h2 (one proxy): the HTTP/2 proxy over TLS, an HTTP/2 origin over TLS
%% inside one of its streams (TLS inside TLS).
h2_h2_test() ->
	with_nghttpx(tls, fun(PP) ->
		{ok, ConnPid} = gunmetal:open("localhost", PP, #{retry => 0, transport => tls,
			protocols => [http2], tls_opts => [{cacertfile, ca()}]}),
		{ok, http2} = gunmetal:await_up(ConnPid),
		T = tunnel_to(ConnPid, h2_origin_dest(), #{}, http2),
		S = gunmetal:get(ConnPid, "/headers", [], #{tunnel => T}),
		{response, nofin, 200, _} = gunmetal:await(ConnPid, S),
		{ok, Body} = gunmetal:await_body(ConnPid, S),
		?assert(has(Body, "\"proto\":\"HTTP/2.0\"")),
		Slow = gunmetal:get(ConnPid, "/delay/5000", [], #{tunnel => T}),
		{ok, #{intermediaries := [#{type := connect, host := "localhost", port := PP,
			transport := tls, protocol := http2}]}} = gunmetal:stream_info(ConnPid, Slow),
		#{transport := tls, protocol := http2, origin_scheme := <<"https">>,
			intermediaries := []} = gunmetal:info(ConnPid),
		gunmetal:close(ConnPid)
	end).

%% The event handler's events name a stream inside a tunnel by Gun's list.
tunnel_event_handler_test() ->
	with_nghttpx(fun(PP) ->
		{ok, ConnPid} = gunmetal:open("127.0.0.1", PP, #{retry => 0, protocols => [http2],
			event_handler => {gunmetal_trace_tests, self()}}),
		{ok, http2} = gunmetal:await_up(ConnPid),
		T = tunnel_to(ConnPid, origin_dest(), #{}, http),
		StreamRef = gunmetal:get(ConnPid, "/bytes/3", [], #{tunnel => T}),
		{ok, <<"abc">>} = gunmetal:await_body(ConnPid, StreamRef),
		receive {trace, response_end, #{stream_ref := StreamRef}} -> ok
		after 5000 -> error(no_response_end) end,
		gunmetal:close(ConnPid)
	end).

%% h2c_http_raw: raw through an HTTP/1.1 CONNECT inside an HTTP/2 tunnel:
%% the bytes go and come on the inner CONNECT's [StreamRef1, Ref].
h2c_http_raw_test() ->
	{ok, _, EchoPort} = gunmetal_raw_tests:init_origin(tcp, fun gunmetal_raw_tests:do_echo/3),
	P2 = tinyproxy(),
	try
		with_nghttpx(fun(PP) ->
			ConnPid = h2_proxy_conn(PP),
			StreamRef1 = tunnel_to(ConnPid, #{host => "127.0.0.1", port => element(2, P2)}, #{}, http),
			StreamRef2 = gunmetal:connect(ConnPid, #{host => "127.0.0.1", port => EchoPort,
				protocols => [raw]}, [], #{tunnel => StreamRef1}),
			{response, fin, 200, _} = gunmetal:await(ConnPid, StreamRef2),
			{up, raw} = gunmetal:await(ConnPid, StreamRef2),
			ok = gunmetal:data(ConnPid, StreamRef2, nofin, <<"Hello world!">>),
			{data, nofin, <<"Hello world!">>} = gunmetal:await(ConnPid, StreamRef2),
			gunmetal:close(ConnPid)
		end)
	after stop_proxy(P2)
	end.
