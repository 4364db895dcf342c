%% A content handler of the user's own, for gunmetal_sse_tests: upper-cases
%% the body and passes it on down the chain (Gun's gun_content_handler
%% behaviour). With #{status => S} it disables itself for other statuses;
%% with #{crash => true} its handle/3 crashes.
%% It tells the test which process runs it and what init was given.
-module(gunmetal_upper_h).

-export([init/5, handle/3]).

init(ReplyTo, StreamRef, Status, Headers, Opts) ->
	send(ReplyTo, {upper_init, self(), StreamRef, Status, is_list(Headers)}),
	case Opts of
		#{status := S} when S =/= Status -> disable;
		_ -> {ok, #{pieces => 0, crash => maps:get(crash, Opts, false)}}
	end.

handle(_, _, #{crash := true}) ->
	error(handler_crash);
handle(IsFin, Data, St = #{pieces := N}) ->
	{ok, string:uppercase(Data), St#{pieces => N + 1, fin => IsFin}}.

%% ReplyTo is a pid, or the request's reply_to fun.
send(Pid, Msg) when is_pid(Pid) -> Pid ! Msg;
send(Fun, Msg) when is_function(Fun, 1) -> Fun(Msg).
