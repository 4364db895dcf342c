%% The examples of Gun's user guide (chapters "Connection" and "HTTP"),
%% re-typed with `gun` changed to `gunmetal` and run against the test
%% server. The guide's own lines are kept as they are, including its paths
%% (the test server answers 404 to /organizations/ninenines; the point is
%% that the code runs and the messages arrive as the guide says). Where the
%% guide connects to example.org, we connect to the test server instead.
-module(gunmetal_guide_tests).
-include_lib("eunit/include/eunit.hrl").

port() -> list_to_integer(os:getenv("GM_HTTP_PORT")).
tls_port() -> list_to_integer(os:getenv("GM_HTTPS_PORT")).
ca() -> os:getenv("GM_CA").

up() ->
	{ok, ConnPid} = gunmetal:open("127.0.0.1", port()),
	{ok, _Protocol} = gunmetal:await_up(ConnPid),
	ConnPid.

%% ---- Connection chapter

opening_a_connection_test() ->
	%% {ok, ConnPid} = gun:open("example.org", 443).
	{ok, ConnPid} = gunmetal:open("localhost", tls_port(),
		#{protocols => [http], tls_opts => [{cacertfile, ca()}]}),
	?assertMatch({ok, _}, gunmetal:await_up(ConnPid)),
	gunmetal:close(ConnPid).

opening_a_tls_connection_test() ->
	%% {ok, ConnPid} = gun:open("example.org", 8443, #{transport => tls}).
	{ok, ConnPid} = gunmetal:open("localhost", tls_port(),
		#{transport => tls, protocols => [http], tls_opts => [{cacertfile, ca()}]}),
	?assertMatch({ok, _}, gunmetal:await_up(ConnPid)),
	gunmetal:close(ConnPid).

synchronous_opening_test() ->
	{ok, ConnPid} = gunmetal:open("127.0.0.1", port()),
	{ok, Protocol} = gunmetal:await_up(ConnPid),
	?assertEqual(http, Protocol),
	gunmetal:close(ConnPid).

monitoring_the_connection_process_test() ->
	{ok, ConnPid} = gunmetal:open("127.0.0.1", port()),
	MRef = monitor(process, ConnPid),
	{ok, _} = gunmetal:await_up(ConnPid),
	gunmetal:close(ConnPid),
	Self = self(),
	%% The guide's receive, in a process of its own (it exits with Reason).
	Pid = spawn(fun() ->
		Self ! {result, catch handling_down(ConnPid, MRef)}
	end),
	?assert(is_pid(Pid)),
	ok.

handling_down(ConnPid, Mref) ->
	receive
		%% Receive Gun messages here...
		{'DOWN', Mref, process, ConnPid, Reason} ->
			error_logger:error_msg("Oops!"),
			exit(Reason)
	after 0 ->
		no_down_here
	end.

down_message_test() ->
	%% The same receive, in the process that holds the monitor.
	{ok, ConnPid} = gunmetal:open("127.0.0.1", port()),
	Mref = monitor(process, ConnPid),
	{ok, _} = gunmetal:await_up(ConnPid),
	gunmetal:close(ConnPid),
	?assertExit(shutdown,
		receive
			%% Receive Gun messages here...
			{'DOWN', Mref, process, ConnPid, Reason} ->
				error_logger:error_msg("Oops!"),
				exit(Reason)
		end).

closing_abruptly_test() ->
	ConnPid = up(),
	gunmetal:close(ConnPid),
	?assertNot(is_process_alive(ConnPid)).

%% ---- HTTP chapter

cancelling_a_stream_test() ->
	ConnPid = up(),
	StreamRef = gunmetal:get(ConnPid, "/infinite"),
	gunmetal:cancel(ConnPid, StreamRef),
	gunmetal:close(ConnPid).

get_test() ->
	ConnPid = up(),
	StreamRef = gunmetal:get(ConnPid, "/organizations/ninenines"),
	?assertMatch({response, _, 404, _}, gunmetal:await(ConnPid, StreamRef)),
	gunmetal:close(ConnPid).

get_with_headers_test() ->
	ConnPid = up(),
	StreamRef = gunmetal:get(ConnPid, "/organizations/ninenines", [
		{<<"accept">>, "application/json"},
		{<<"user-agent">>, "revolver/1.0"}
	]),
	?assertMatch({response, _, 404, _}, gunmetal:await(ConnPid, StreamRef)),
	gunmetal:close(ConnPid).

head_test() ->
	ConnPid = up(),
	StreamRef = gunmetal:head(ConnPid, "/organizations/ninenines"),
	?assertMatch({response, fin, 404, _}, gunmetal:await(ConnPid, StreamRef)),
	StreamRef2 = gunmetal:head(ConnPid, "/organizations/ninenines", [
		{<<"accept">>, "application/json"},
		{<<"user-agent">>, "revolver/1.0"}
	]),
	?assertMatch({response, fin, 404, _}, gunmetal:await(ConnPid, StreamRef2)),
	gunmetal:close(ConnPid).

post_test() ->
	ConnPid = up(),
	Body = "{\"msg\": \"Hello world!\"}",
	StreamRef = gunmetal:post(ConnPid, "/organizations/ninenines", [
		{<<"content-type">>, "application/json"}
	], Body),
	?assertMatch({response, _, 404, _}, gunmetal:await(ConnPid, StreamRef)),
	%% The same against /echo, to see the body arrive.
	StreamRef2 = gunmetal:post(ConnPid, "/echo", [
		{<<"content-type">>, "application/json"}
	], Body),
	{response, nofin, 200, _} = gunmetal:await(ConnPid, StreamRef2),
	?assertEqual({ok, list_to_binary(Body)}, gunmetal:await_body(ConnPid, StreamRef2)),
	gunmetal:close(ConnPid).

post_delayed_body_test() ->
	ConnPid = up(),
	Body = "{\"msg\": \"Hello world!\"}",
	StreamRef = gunmetal:post(ConnPid, "/echo", [
		{<<"content-length">>, integer_to_binary(length(Body))},
		{<<"content-type">>, "application/json"}
	]),
	gunmetal:data(ConnPid, StreamRef, fin, Body),
	{response, nofin, 200, _} = gunmetal:await(ConnPid, StreamRef),
	?assertEqual({ok, list_to_binary(Body)}, gunmetal:await_body(ConnPid, StreamRef)),
	gunmetal:close(ConnPid).

streaming_the_request_body_test() ->
	ConnPid = up(),
	Filepath = "/tmp/gunmetal_guide_sendfile." ++ os:getpid(),
	Content = binary:copy(<<"0123456789abcdef">>, 2000),
	ok = file:write_file(Filepath, Content),
	StreamRef = gunmetal:put(ConnPid, "/echo", [{<<"content-type">>, <<"application/octet-stream">>}]),
	sendfile(ConnPid, StreamRef, Filepath),
	{response, nofin, 200, _} = gunmetal:await(ConnPid, StreamRef),
	?assertEqual({ok, Content}, gunmetal:await_body(ConnPid, StreamRef)),
	file:delete(Filepath),
	gunmetal:close(ConnPid).

sendfile(ConnPid, StreamRef, Filepath) ->
	{ok, IoDevice} = file:open(Filepath, [read, binary, raw]),
	do_sendfile(ConnPid, StreamRef, IoDevice).

do_sendfile(ConnPid, StreamRef, IoDevice) ->
	case file:read(IoDevice, 8000) of
		eof ->
			gunmetal:data(ConnPid, StreamRef, fin, <<>>),
			file:close(IoDevice);
		{ok, Bin} ->
			gunmetal:data(ConnPid, StreamRef, nofin, Bin),
			do_sendfile(ConnPid, StreamRef, IoDevice)
	end.

delete_test() ->
	ConnPid = up(),
	StreamRef = gunmetal:delete(ConnPid, "/organizations/ninenines"),
	?assertMatch({response, _, 404, _}, gunmetal:await(ConnPid, StreamRef)),
	StreamRef2 = gunmetal:delete(ConnPid, "/organizations/ninenines", [
		{<<"user-agent">>, "revolver/1.0"}
	]),
	?assertMatch({response, _, 404, _}, gunmetal:await(ConnPid, StreamRef2)),
	gunmetal:close(ConnPid).

options_test() ->
	ConnPid = up(),
	StreamRef = gunmetal:options(ConnPid, "/organizations/ninenines"),
	?assertMatch({response, _, _, _}, gunmetal:await(ConnPid, StreamRef)),
	StreamRef2 = gunmetal:options(ConnPid, "/organizations/ninenines", [
		{<<"user-agent">>, "revolver/1.0"}
	]),
	?assertMatch({response, _, _, _}, gunmetal:await(ConnPid, StreamRef2)),
	StreamRef3 = gunmetal:options(ConnPid, "*"),
	?assertMatch({response, _, _, _}, gunmetal:await(ConnPid, StreamRef3)),
	gunmetal:close(ConnPid).

trace_request_test() ->
	ConnPid = up(),
	StreamRef = gunmetal:request(ConnPid, "TRACE", "/", [
		{<<"max-forwards">>, "30"}
	], <<>>),
	?assertMatch({response, _, _, _}, gunmetal:await(ConnPid, StreamRef)),
	gunmetal:close(ConnPid).

receiving_a_response_using_receive_test() ->
	{ok, ConnPid} = gunmetal:open("127.0.0.1", port()),
	MRef = monitor(process, ConnPid),
	{ok, _} = gunmetal:await_up(ConnPid),
	?assertEqual(ok, print_body(ConnPid, MRef)),
	gunmetal:close(ConnPid).

print_body(ConnPid, MRef) ->
	StreamRef = gunmetal:get(ConnPid, "/"),
	receive
		{gun_response, ConnPid, StreamRef, fin, _Status, _Headers} ->
			no_data;
		{gun_response, ConnPid, StreamRef, nofin, _Status, _Headers} ->
			receive_data(ConnPid, MRef, StreamRef);
		{'DOWN', MRef, process, ConnPid, Reason} ->
			error_logger:error_msg("Oops!"),
			exit(Reason)
	after 1000 ->
		exit(timeout)
	end.

receive_data(ConnPid, MRef, StreamRef) ->
	receive
		{gun_data, ConnPid, StreamRef, nofin, Data} ->
			io:format("~s~n", [Data]),
			receive_data(ConnPid, MRef, StreamRef);
		{gun_data, ConnPid, StreamRef, fin, Data} ->
			io:format("~s~n", [Data]);
		{'DOWN', MRef, process, ConnPid, Reason} ->
			error_logger:error_msg("Oops!"),
			exit(Reason)
	after 1000 ->
		exit(timeout)
	end.

receiving_a_response_using_await_test() ->
	ConnPid = up(),
	StreamRef = gunmetal:get(ConnPid, "/"),
	Result = case gunmetal:await(ConnPid, StreamRef) of
		{response, fin, _Status, _Headers} ->
			no_data;
		{response, nofin, _Status, _Headers} ->
			{ok, Body} = gunmetal:await_body(ConnPid, StreamRef),
			io:format("~s~n", [Body])
	end,
	?assertEqual(ok, Result),
	gunmetal:close(ConnPid).

pushed_response_test_() -> {timeout, 20, fun() ->
	{ok, ConnPid} = gunmetal:open("localhost", tls_port(),
		#{transport => tls, tls_opts => [{cacertfile, ca()}], retry => 0}),
	?assertEqual({ok, http2}, gunmetal:await_up(ConnPid)),
	OriginalStreamRef = gunmetal:get(ConnPid, "/push"),
	{push, PushedStreamRef, Method, _URI, _Headers}
		= gunmetal:await(ConnPid, OriginalStreamRef),
	?assertEqual(<<"GET">>, Method),
	?assertMatch({response, _, 200, _}, gunmetal:await(ConnPid, PushedStreamRef)),
	gunmetal:close(ConnPid)
end}.

flushing_test() ->
	ConnPid = up(),
	StreamRef = gunmetal:get(ConnPid, "/bytes/10"),
	timer:sleep(100),
	gunmetal:flush(ConnPid),
	StreamRef2 = gunmetal:get(ConnPid, "/bytes/10"),
	timer:sleep(100),
	gunmetal:flush(StreamRef2),
	?assertEqual({error, timeout}, gunmetal:await(ConnPid, StreamRef, 100)),
	?assertEqual({error, timeout}, gunmetal:await(ConnPid, StreamRef2, 100)),
	gunmetal:close(ConnPid).

redirecting_responses_test() ->
	ConnPid = up(),
	Self = self(),
	Pid = spawn(fun() ->
		receive {gun_response, ConnPid, Ref, _, Status, _} -> Self ! {other_process, Ref, Status} end
	end),
	StreamRef = gunmetal:get(ConnPid, "/organizations/ninenines", [],
		#{reply_to => Pid}),
	receive {other_process, StreamRef, Status} -> ?assertEqual(404, Status)
	after 5000 -> error(timeout) end,
	gunmetal:close(ConnPid).

%% ---- Websocket chapter (Gun 2.x)

ws_test_() -> {timeout, 30, fun() ->
	?assert(lists:member(ws, gunmetal:features())),
	ws_upgrade_example(),
	ws_upgrade_with_headers_example(),
	ws_upgrade_with_options_example(),
	ws_send_examples()
end}.

ws_upgrade_example() ->
	ConnPid = up(),
	StreamRef = gunmetal:ws_upgrade(ConnPid, "/ws"),
	?assertEqual(ok, ws_receive_upgrade(ConnPid, StreamRef)),
	gunmetal:close(ConnPid).

ws_upgrade_with_headers_example() ->
	ConnPid = up(),
	StreamRef = gunmetal:ws_upgrade(ConnPid, "/ws", [
		{<<"sec-websocket-protocol">>, "mychat"}
	]),
	?assertEqual(ok, ws_receive_upgrade(ConnPid, StreamRef)),
	gunmetal:close(ConnPid).

ws_upgrade_with_options_example() ->
	ConnPid = up(),
	StreamRef = gunmetal:ws_upgrade(ConnPid, "/ws", [], #{
		compress => false
	}),
	?assertEqual(ok, ws_receive_upgrade(ConnPid, StreamRef)),
	gunmetal:close(ConnPid).

%% The guide's receive, with upgrade_success/2 returning ok.
ws_receive_upgrade(ConnPid, StreamRef) ->
	receive
		{gun_upgrade, ConnPid, StreamRef, [<<"websocket">>], _Headers} ->
			upgrade_success(ConnPid, StreamRef);
		{gun_response, ConnPid, _, _, Status, Headers} ->
			exit({ws_upgrade_failed, Status, Headers});
		{gun_error, ConnPid, StreamRef, Reason} ->
			exit({ws_upgrade_failed, Reason})
		%% More clauses here as needed.
	after 1000 ->
		exit(timeout)
	end.

upgrade_success(_ConnPid, _StreamRef) -> ok.

ws_send_examples() ->
	ConnPid = up(),
	StreamRef = gunmetal:ws_upgrade(ConnPid, "/ws"),
	ok = ws_receive_upgrade(ConnPid, StreamRef),
	gunmetal:ws_send(ConnPid, StreamRef, {text, "Hello!"}),
	?assertEqual({text, <<"Hello!">>}, receive_frame(ConnPid, StreamRef)),
	BinaryValue = <<1, 2, 3>>,
	gunmetal:ws_send(ConnPid, StreamRef, [
		{text, "Hello!"},
		{binary, BinaryValue},
		close
	]),
	%% Echoes that cross our close frame still come, before the close.
	?assertEqual([{text, <<"Hello!">>}, {binary, BinaryValue}, close],
		receive_until_close(ConnPid, StreamRef, [])),
	gunmetal:close(ConnPid).

receive_frame(ConnPid, StreamRef) ->
	receive
		{gun_ws, ConnPid, StreamRef, Frame} ->
			handle_frame(ConnPid, StreamRef, Frame)
	after 5000 -> exit(timeout)
	end.

handle_frame(_ConnPid, _StreamRef, Frame) -> Frame.

receive_until_close(ConnPid, StreamRef, Acc) ->
	case receive_frame(ConnPid, StreamRef) of
		close -> lists:reverse([close|Acc]);
		F = {close, _, _} -> lists:reverse([F|Acc]);
		F -> receive_until_close(ConnPid, StreamRef, [F|Acc])
	end.
